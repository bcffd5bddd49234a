"""Root subscription fields: changes of training jobs and model versions, pushed live.

Thin: the arguments become a selector, the feed does the rest (graphql_api/live), and the end
of a subscription (too slow, server stopping) becomes a GraphQL error that names the cursor to
resume from. See docs/subscriptions.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Annotated, Any

import strawberry
from graphql.error import GraphQLError
from graphql.language import VariableNode, Visitor, visit
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from graphql_api.auth.scope import key_scope
from graphql_api.context import Context, Info
from graphql_api.domain.api_keys import ModelScope
from graphql_api.domain.errors import CursorExpiredError
from graphql_api.domain.events import ChangeEvent, StoredEvent
from graphql_api.live import cursor, records
from graphql_api.live.direct import GroupKey
from graphql_api.live.fanout import render_scope
from graphql_api.live.selectors import JobSelector, ModelVersionSelector, Selector
from graphql_api.live.subscriber import CursorExpired, FeedStopped, FellBehind
from graphql_api.live.throttled_log import ThrottledWarning
from graphql_api.types import typed
from graphql_api.types.enums import TrainingStatus
from graphql_api.types.live_updates import ModelVersionUpdate, TrainingJobUpdate
from resolvers.metric_subscriptions import MetricSubscription

log = logging.getLogger("mltrain.live")
#: Subscriptions are shed in bursts: one line per burst, with its count.
shed_warning = ThrottledWarning(log)

Selection = SelectedField | FragmentSpread | InlineFragment

AFTER_HELP = (
    "Resume: first every matching change after this cursor (an event's `cursor`, or a "
    "history entry's), in order, then live ones, with no gap and no duplicate. Without it, "
    "only changes from now on."
)


@strawberry.type(description="Changes pushed over WebSocket (graphql-transport-ws or graphql-ws).")
class Subscription(MetricSubscription):
    @typed.subscription(
        description="One event per change of a matching training job: creation, every status "
        "transition, metrics reported, logs location set. All filters given must match.",
        graphql_type=TrainingJobUpdate,
    )
    async def training_job_updates(
        self,
        info: Info,
        job_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this job.")
        ] = None,
        model_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only jobs training this model version."),
        ] = None,
        statuses: Annotated[
            list[TrainingStatus] | None,
            strawberry.argument(
                description="Only changes after which the job is in one of these statuses."
            ),
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> AsyncGenerator[TrainingJobUpdate | GraphQLError, None]:
        selector = JobSelector.of(
            None if job_id is None else str(job_id),
            None if model_id is None else str(model_id),
            None if statuses is None else [str(status) for status in statuses],
        )
        # Job events leave out the hyperparameters (immutable, can be large): read from the
        # record, once per job per process, and only if this subscription shows them.
        wants_hyperparameters = _selects(info.selected_fields, "job", "hyperparameters")
        # Strawberry caches the converted selection on the Info, which this generator keeps
        # for the subscription's whole life: ~2.9 KiB per idle subscriber (tracemalloc, 300
        # subscribers), read once here and never again.
        vars(info).pop("selected_fields", None)
        # aclosing: a closed subscription closes the feed's stream at once (unsubscribes).
        async with aclosing(_events(info, selector, after)) as events:
            async for event in events:
                hyperparameters = None
                if wants_hyperparameters and isinstance(event, ChangeEvent):
                    hyperparameters = await _hyperparameters(info, event.entity_id)
                # An unreadable event yields its EVENT_UNREADABLE marker: graphql-core raises a
                # yielded exception as that event's error and the stream goes on.
                yield TrainingJobUpdate.shared(event, hyperparameters)

    @typed.subscription(
        description="One event per change of a model version: registered, promoted, deployed "
        "to production (the previous production version's ARCHIVED event comes first), "
        "archived, metrics updated. What an inference service watches to swap versions.",
        graphql_type=ModelVersionUpdate,
    )
    async def model_version_updates(
        self,
        info: Info,
        model_name: Annotated[
            str | None, strawberry.argument(description="Only versions of this model.")
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> AsyncGenerator[ModelVersionUpdate | GraphQLError, None]:
        async with aclosing(_events(info, ModelVersionSelector(model_name), after)) as events:
            async for event in events:
                # As above: an unreadable event is delivered as its EVENT_UNREADABLE marker.
                yield ModelVersionUpdate.shared(event)


def _selects(fields: Sequence[Selection], *path: str) -> bool:
    """Whether the subscription's selection reaches ``path`` (through fragments)."""
    level: list[Selection] = [s for field in fields for s in field.selections]
    for name in path:
        next_level: list[Selection] = []
        while level:
            selection = level.pop()
            if isinstance(selection, SelectedField):
                if selection.name == name:
                    next_level.extend(selection.selections)
                    if name == path[-1]:
                        return True
            else:
                level.extend(selection.selections)
        level = next_level
    return False


#: Reads of a job's hyperparameters in flight: subscribers that miss the cache together share one.
_reading: dict[str, asyncio.Task[dict[str, Any]]] = {}


async def _hyperparameters(info: Info, job_id: str) -> dict[str, Any]:
    found = records.known_hyperparameters(job_id)
    if found is not None:
        return found
    reading = _reading.get(job_id)
    if reading is None:
        reading = _reading[job_id] = asyncio.ensure_future(_read_hyperparameters(info, job_id))
        reading.add_done_callback(lambda _: _reading.pop(job_id, None))
    # Shielded: one subscriber leaving must not cancel the read the others wait for.
    return await asyncio.shield(reading)


async def _read_hyperparameters(info: Info, job_id: str) -> dict[str, Any]:
    job = await info.context.services.training.get(job_id)
    if job is None:
        return {}
    records.remember_hyperparameters(job_id, job.hyperparameters)
    return dict(job.hyperparameters)


async def _in_scope(
    context: Context, scope: ModelScope, event: StoredEvent, names: dict[str, str | None]
) -> bool:
    """Whether a key limited to ``scope`` may receive ``event`` (auth/scope.py). An unreadable
    event cannot say whose it is: not delivered to such keys."""
    if not isinstance(event, ChangeEvent):
        return False
    name = event.model_name
    if name is None:
        if event.model_id not in names:
            version = await context.services.registry.get(event.model_id)
            names[event.model_id] = None if version is None else version.model_name
        name = names[event.model_id]
    return scope.allows(name)


def _delivery_group(info: Info, scope: ModelScope | None) -> GroupKey | None:
    """What makes this subscription's frames the same as another's but for their ids
    (live/direct.py): its operation and variables (filters and whatever else the selection
    reads), its connection's role, and its key's model-name patterns (the events it may see).
    Not the variable that only gives ``after``: it says where the stream starts, and once the
    subscription is live an event's frame is the same whichever cursor it resumed from (clients
    that reconnect each resume from their own cursor)."""
    operation = info.operation
    if operation.loc is None:
        return None  # parsed without locations: no source text to compare
    values = dict(info.variable_values)
    cursor_variable = _after_variable(info)
    if cursor_variable is not None:
        values.pop(cursor_variable, None)
    variables = json.dumps(values, sort_keys=True, default=repr, separators=(",", ":"))
    patterns = "" if scope is None else json.dumps(scope.patterns)
    return (
        operation.loc.source.body,
        None if operation.name is None else operation.name.value,
        variables,
        f"{render_scope(info.context)} {patterns}",
    )


def _after_variable(info: Info) -> str | None:
    """The variable the root field's ``after`` is given, if it is used nowhere else in the
    operation (or in any fragment of the document: a conservative count)."""
    # Strawberry's Info keeps graphql-core's resolve info as _raw_info (see prefetch.py).
    raw = info._raw_info
    name = None
    for argument in raw.field_nodes[0].arguments or ():
        if argument.name.value == "after" and isinstance(argument.value, VariableNode):
            name = argument.value.name.value
    if name is None:
        return None
    uses = 0

    class CountUses(Visitor):
        def enter_variable(self, node: VariableNode, *_: object) -> None:
            nonlocal uses
            uses += node.name.value == name

    for node in [raw.operation, *raw.fragments.values()]:
        visit(node, CountUses())
    # Its definition (``$cursor: String``) and the ``after`` argument: nothing else.
    return name if uses == 2 else None


async def _events(
    info: Info, selector: Selector, after: str | None
) -> AsyncGenerator[StoredEvent, None]:
    context = info.context
    if context.feed is None:
        raise RuntimeError("subscriptions need the server's change feed (create_app runs one)")
    scope = key_scope(context)
    stream = context.feed.stream(
        selector,
        None if after is None else cursor.decode(after),
        _delivery_group(info, scope),
        # A key limited to model names filters events here, after the feed: its group's
        # leader may show an event none of its members gets, and each parked member would
        # be restarted to find that out. Such subscriptions keep their consumers.
        parkable=scope is None,
    )
    #: model id -> its name (a version's name never changes), for a key limited to names.
    names: dict[str, str | None] = {}
    try:
        async with aclosing(stream):
            async for event in stream:
                if scope is not None and not await _in_scope(context, scope, event, names):
                    continue
                # Each execution for an event gets fresh loaders (live/fanout.py), so nested
                # fields never show what an earlier event cached.
                yield event
    except FellBehind as ended:
        resume = cursor.encode(ended.resume_seq)
        if ended.waited is None:
            why = f"more than {ended.capacity} events were waiting to be sent"
        else:
            why = (
                f"an event waited {ended.waited:.1f} s to be sent (the limit is "
                f"{ended.max_lag:g} s: the client reads too slowly, or the server has more "
                "subscribers than it can serve in time)"
            )
        shed_warning.warn("ended a subscription that fell behind: %s", why)
        raise GraphQLError(
            f'This subscription fell behind: {why}. Subscribe again with after: "{resume}" '
            "to receive the rest; nothing is lost.",
            extensions={"code": "SUBSCRIBER_TOO_SLOW", "resumeAfter": resume},
        ) from None
    except CursorExpired:
        raise GraphQLError(
            "This server fell behind the change log by more than its retention, and events "
            "this subscription should have received were deleted before it could send them. "
            "Read the current state again (the query), then subscribe from now, without after.",
            extensions={"code": CursorExpiredError.code},
        ) from None
    except FeedStopped as ended:
        resume = cursor.encode(ended.resume_seq)
        raise GraphQLError(
            f'The server is shutting down. Subscribe again (to any instance) with after: "{resume}"'
            "; nothing is lost.",
            extensions={"code": "SERVER_SHUTTING_DOWN", "resumeAfter": resume},
        ) from None
