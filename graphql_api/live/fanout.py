"""Fan-out: a subscription's selection is executed once per event and distinct operation.

Every subscriber of an event used to execute its own selection for it: 1,000 subscribers of
all jobs at 20 changes/s asked the one event loop for 20,000 executions a second, a few
thousand got done, and every subscriber was shed as too slow (bench/README.md). Subscribers
that sent the same operation (document text and operation name), with the same variables, and
whose connections have the same role, get the same result for an event: it is executed once
and the result shared (``SharedRenders``), and encoded to JSON once (``EncodedResults``); the
rest of a delivery (Strawberry's error handling for that subscriber, the frame around the
encoded result and the socket send) stays per subscriber.

What is shared and why it is safe:

- The key is ``(operation, variables, scope, event)``. Every argument a subscriber passes
  (``after``, filters) is in the document or the variables, so subscribers that differ in any
  of them never share. The scope is the connection's role (or open access): nothing a
  subscription shows depends on which key of a role is used, and keeping roles apart keeps
  any future role-dependent field right.
- The event is the object the subscription yields for it (``TrainingJobUpdate.shared`` builds
  one per event, and one more for selections that show hyperparameters): an entry holds that
  object, so its identity cannot be reused while the entry lives. An unreadable event's
  ``EVENT_UNREADABLE`` marker is made per subscriber, so it is executed per subscriber (rare,
  and still delivered to every one).
- The shared result is graphql-core's ``ExecutionResult``. Strawberry wraps it in a new result
  per subscriber before its extensions see it, and error masking (``ClientErrors``) replaces
  the error list on that copy, so a masked error carries each subscriber's own request id.
- Relations an update resolves "now" (a job's model version) are read once, through the loaders
  of the subscriber that executes, instead of once per subscriber: all of them show the same
  current value.
- An execution that awaits (a relation read from the database) runs as its own task: the
  subscribers of that key await it together, and one of them leaving does not cancel it.

A shared result is also encoded once (``EncodedResults``): the graphql-transport-ws ``next``
frames of its subscribers differ only in the subscription's ``id``, so the result's JSON is
written once and each frame is built around it (``websocket.KeepAliveTransportWSHandler``).

Executions get fresh loaders (``_fresh_loaders``): a WebSocket's context lives as long as the
connection, so every execution for an event starts with empty loader caches and shows nothing
an earlier event cached. They used to be made per subscriber and event, where only an
execution reads them (3-4% of a delivery's CPU, profiled with 500 subscribers).

The cache keeps the last ``capacity`` executions (LRU). An event is fanned out within the lag
limit, so an entry is needed for seconds; one evicted too early costs a second execution, never
a wrong result. ``executions`` and ``shared`` count what happened (tests and bench read them).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable
from inspect import isawaitable
from typing import Any, NamedTuple, TypeVar, cast

from graphql.execution import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_api import wire_json
from graphql_api.loaders import Loaders

R = TypeVar("R")

#: (document text, operation name, variables as canonical JSON, role scope)
OperationKey = tuple[str, str | None, str, str]


#: ``SharedRenders.found``: nothing executed yet for that operation and event.
NOT_FOUND: Any = object()


class _Entry(NamedTuple):
    payload: object  # kept alive, so that ``id(payload)`` in the key stays its own
    result: Any  # an ExecutionResult, or the task that will produce it


class SharedRenders:
    """The executions of one process's subscriptions, shared per (operation, event)."""

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[OperationKey, int], _Entry] = OrderedDict()
        #: Selections executed for an event (once per distinct operation and event).
        self.executions = 0
        #: Deliveries that used another subscriber's execution.
        self.shared = 0

    def __len__(self) -> int:
        return len(self._entries)

    def found(self, operation: OperationKey, payload: object) -> Any:
        """The result already executed for ``payload`` under ``operation`` (counted as shared),
        or ``NOT_FOUND``."""
        key = (operation, id(payload))
        entry = self._entries.get(key)
        if entry is None or entry.payload is not payload:
            return NOT_FOUND
        self._entries.move_to_end(key)
        self.shared += 1
        found = entry.result
        # An awaiting execution is shared as its task: this subscriber awaits it.
        return _awaiting(found) if isinstance(found, asyncio.Future) else found

    def render(self, operation: OperationKey, payload: object, execute: Callable[[], R]) -> R:
        """``execute()``'s result for ``payload`` under ``operation``: executed by the first
        subscriber that asks, the same result for the others."""
        found = self.found(operation, payload)
        if found is not NOT_FOUND:
            # R is an awaitable of the result where ``execute`` returned one.
            return cast(R, found)
        key = (operation, id(payload))
        result = execute()
        self.executions += 1
        if isawaitable(result):
            # Its own task: the others await it too, and the first subscriber's leaving (its
            # task cancelled) must not cancel the execution they wait for.
            task = asyncio.ensure_future(result)
            self._keep(key, _Entry(payload, task))
            return cast(R, _awaiting(task))
        self._keep(key, _Entry(payload, result))
        return result

    def _keep(self, key: tuple[OperationKey, int], entry: _Entry) -> None:
        self._entries[key] = entry
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


class EncodedResults:
    """The JSON of each result's ``data``, encoded once however many subscribers send it.

    Keyed by the identity of the ``data`` object: subscribers that share an execution get the
    same one (Strawberry copies the result per subscriber, not its data). An entry holds its
    object, so that identity is not reused while the entry lives; the last ``capacity`` are
    kept (LRU), and one evicted early is encoded again, never wrong.
    """

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[int, tuple[object, str]] = OrderedDict()
        #: Results encoded (once per distinct result).
        self.encodings = 0
        #: Sends that reused an encoding.
        self.reused = 0

    def __len__(self) -> int:
        return len(self._entries)

    def encode(self, data: object) -> str:
        key = id(data)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is data:
            self._entries.move_to_end(key)
            self.reused += 1
            return entry[1]
        text = wire_json.encode(data)
        self.encodings += 1
        self._entries[key] = (data, text)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return text


async def _awaiting(shared: asyncio.Future[Any]) -> Any:
    return await asyncio.shield(shared)


def render_scope(context: object) -> str:
    """What a subscriber's results may depend on besides the operation: its role."""
    if getattr(context, "open_access", False):
        return "open"
    key = getattr(context, "api_key", None)
    role = getattr(key, "role", None)
    return "anonymous" if role is None else f"role:{getattr(role, 'value', role)}"


class SharingExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with subscription events executed through ``SharedRenders``.

    graphql-core builds one executor per subscription and copies it for each event
    (``build_per_event_executor``); the copy executes the selection with the event as root
    value. Here the copy first asks the feed's ``SharedRenders`` (``context.feed.renders``).
    Queries, mutations and anything without a feed execute as before.
    """

    #: None: not computed yet; (): not shareable (no source text to compare).
    _operation_key: OperationKey | tuple[()] | None = None
    _event: object = None
    _for_event = False

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        if self._operation_key is None:
            self._operation_key = _operation_key(self)  # once per subscription
        renders = getattr(getattr(self.context_value, "feed", None), "renders", None)
        if self._operation_key and isinstance(renders, SharedRenders):
            found = renders.found(self._operation_key, payload)
            if found is not NOT_FOUND:
                # Already executed for this event: no copy of the executor (graphql-core only
                # calls ``execute_operation`` on it; the copy was ~7% of a delivery's CPU,
                # py-spy with 300 subscribers).
                return cast(Executor[Any], _SharedEvent(found))
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, SharingExecutor)
        executor._event = payload
        executor._for_event = True
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        if not self._for_event:  # a query, a mutation
            return super().execute_operation(serially)
        operation = self._operation_key
        renders = getattr(getattr(self.context_value, "feed", None), "renders", None)
        if not operation or not isinstance(renders, SharedRenders):
            _fresh_loaders(self.context_value)
            return super().execute_operation(serially)
        execute_here = super().execute_operation

        def execute() -> Any:
            _fresh_loaders(self.context_value)
            return execute_here(serially)

        return renders.render(operation, self._event, execute)


class _SharedEvent:
    """Stands in for a per-event executor whose result another subscriber's execution made."""

    __slots__ = ("_result",)

    def __init__(self, result: Any) -> None:
        self._result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        return self._result


def _fresh_loaders(context: object) -> None:
    """Empty loader caches for an execution on a long-lived (WebSocket) context."""
    services = getattr(context, "services", None)
    if services is not None and hasattr(context, "loaders"):
        context.loaders = Loaders(services)


def _operation_key(executor: Executor[Any]) -> OperationKey | tuple[()]:
    operation = executor.operation
    if operation.loc is None:
        return ()  # parsed without locations: no source text to compare, never shared
    document = operation.loc.source.body
    name = None if operation.name is None else operation.name.value
    variables = json.dumps(
        executor.variable_values.coerced, sort_keys=True, default=repr, separators=(",", ":")
    )
    return (document, name, variables, render_scope(executor.context_value))
