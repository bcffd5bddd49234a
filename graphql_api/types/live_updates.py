"""Events pushed to subscribers: one per change of a training job or a model version.

One event goes to every matching subscriber, so its GraphQL object is built once per event
(``of``, cached) and holds plain values: resolving plain attributes is the cheap path of the
executor, which runs once per subscriber.

An event that cannot be shown (its stored form is corrupt or from an incompatible version)
becomes the ``EVENT_UNREADABLE`` error instead of an update: yielded in the update's place, it is
delivered as that event's result (``data: null`` and the error, which names the event's
cursor), and the subscription goes on with the next event.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from graphql.error import GraphQLError

from graphql_api.domain.enums import ModelStatus as DomainModelStatus
from graphql_api.domain.enums import TrainingStatus as DomainTrainingStatus
from graphql_api.domain.events import ChangeEvent, StoredEvent, UnreadableEvent
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.live import cursor, records
from graphql_api.types.change_event import unreadable_error
from graphql_api.types.enums import ChangeKind, ModelStatus, TrainingStatus
from graphql_api.types.model_version import ModelVersionType
from graphql_api.types.training_job import TrainingJobType

log = logging.getLogger("mltrain.live")

CURSOR_HELP = (
    "Opaque position of this event in the change log: pass it as `after` to resume right "
    "after it, on any server instance."
)

_CACHE_SIZE = 1024
_built: OrderedDict[tuple[type, records.EventKey, bool], object] = OrderedDict()
#: Unreadable events already logged (by sequence number).
_reported: OrderedDict[int, None] = OrderedDict()

U = TypeVar("U")


def _shared(
    update: type[U],
    build: Callable[[ChangeEvent], U | None],
    event: StoredEvent,
    variant: bool = False,
) -> U | GraphQLError:
    if isinstance(event, UnreadableEvent):
        if event.seq not in _reported:  # once, not once per subscriber
            _reported[event.seq] = None
            if len(_reported) > _CACHE_SIZE:
                _reported.popitem(last=False)
            log.warning(
                "subscriptions: the event at seq %d is unreadable: %s", event.seq, event.reason
            )
        return unreadable_error(event.seq)
    key = (update, records.event_key(event), variant)
    found = _built.get(key, _MISSING)
    if found is _MISSING:
        try:
            found = build(event)
        except ValueError:  # a status that is not one of the entity's
            found = None
        if found is None:
            log.warning("subscriptions: the event at seq %d cannot be shown", event.seq)
        _built[key] = found
        if len(_built) > _CACHE_SIZE:
            _built.popitem(last=False)
    return found if isinstance(found, update) else unreadable_error(event.seq)


_MISSING = object()


@strawberry.type(description="One change of a training job, pushed as it happens.")
class TrainingJobUpdate:
    cursor: str = strawberry.field(description=CURSOR_HELP)
    kind: ChangeKind = strawberry.field(description="What happened.")
    previous_status: TrainingStatus | None = strawberry.field(
        description="Status before the change (null for a creation)."
    )
    status: TrainingStatus = strawberry.field(description="Status after the change.")
    occurred_at: datetime = strawberry.field(description="When it happened (UTC).")
    job: TrainingJob = strawberry.field(
        graphql_type=TrainingJobType,
        description="The job as it was right after the change (hyperparameters, which never "
        "change, are read from the job; relations such as modelVersion are resolved now).",
    )

    @classmethod
    def of(
        cls, event: ChangeEvent, hyperparameters: Mapping[str, Any] | None = None
    ) -> TrainingJobUpdate | None:
        """The update for ``event``; None if it cannot be shown."""
        job = records.job_after(event, hyperparameters)
        if job is None:
            return None
        previous = event.previous_status
        return cls(
            cursor=cursor.encode(event.seq),
            kind=event.kind,
            previous_status=None if previous is None else DomainTrainingStatus(previous),
            status=DomainTrainingStatus(event.status),
            occurred_at=event.occurred_at,
            job=job,
        )

    @classmethod
    def shared(
        cls, event: StoredEvent, hyperparameters: Mapping[str, Any] | None = None
    ) -> TrainingJobUpdate | GraphQLError:
        """The event's object, built once however many subscribers show it (once more for
        those that select the job's hyperparameters, which the caller read from the record),
        or the ``EVENT_UNREADABLE`` marker."""
        return _shared(
            cls, lambda e: cls.of(e, hyperparameters), event, hyperparameters is not None
        )


@strawberry.type(description="One change of a model version, pushed as it happens.")
class ModelVersionUpdate:
    cursor: str = strawberry.field(description=CURSOR_HELP)
    kind: ChangeKind = strawberry.field(
        description="What happened: REGISTERED, PROMOTED, DEPLOYED (reached production), "
        "ARCHIVED, METRICS_UPDATED, UPDATED (description, tags, artifact), ALIAS_SET or "
        "ALIAS_DELETED."
    )
    previous_status: ModelStatus | None = strawberry.field(
        description="Status before the change (null for a registration)."
    )
    status: ModelStatus = strawberry.field(description="Status after the change.")
    occurred_at: datetime = strawberry.field(description="When it happened (UTC).")
    model_version: ModelVersion = strawberry.field(
        graphql_type=ModelVersionType,
        description="The model version as it was right after the change (relations such as "
        "trainingJobs are resolved now).",
    )
    alias: str | None = strawberry.field(
        default=None, description="ALIAS_SET, ALIAS_DELETED: the alias that moved."
    )
    previous_model_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="ALIAS_SET: the version the alias named before; DEPLOYED by a rollback: "
        "the version it replaced in production. Null otherwise.",
    )
    reason: str | None = strawberry.field(
        default=None, description="Why, as the client said (a rollback's reason)."
    )
    actor: str | None = strawberry.field(
        default=None, description="The name of the API key that made the change, when known."
    )

    @classmethod
    def of(cls, event: ChangeEvent) -> ModelVersionUpdate | None:
        """The update for ``event``; None if it cannot be shown."""
        version = records.model_version_after(event)
        if version is None:
            return None
        previous = event.previous_status
        return cls(
            cursor=cursor.encode(event.seq),
            kind=event.kind,
            previous_status=None if previous is None else DomainModelStatus(previous),
            status=DomainModelStatus(event.status),
            occurred_at=event.occurred_at,
            model_version=version,
            alias=event.alias,
            previous_model_id=None
            if event.previous_model_id is None
            else strawberry.ID(event.previous_model_id),
            reason=event.reason,
            actor=event.actor,
        )

    @classmethod
    def shared(cls, event: StoredEvent) -> ModelVersionUpdate | GraphQLError:
        """The event's object, built once however many subscribers show it, or the
        ``EVENT_UNREADABLE`` marker."""
        return _shared(cls, cls.of, event)
