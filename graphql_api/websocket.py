"""WebSocket transport details of /graphql: keep-alive pings and refused origins.

Strawberry speaks both subscription protocols on one path. The legacy graphql-ws protocol has
its own keep-alive ("ka") messages; graphql-transport-ws lets either side ping, but Strawberry's
handler only answers pings, so ``KeepAliveTransportWSHandler`` also sends them. Together with
the WebSocket-level pings of ``mltrain serve`` (which drop dead peers), this keeps proxies from
closing a quiet subscription and tells clients the server is alive.

A subscription's ``next`` messages are encoded once per distinct result, not per subscriber:
subscribers that share an execution (live/fanout.py) get the same result ``data``, whose JSON
is encoded once (``EncodedResults``); each subscriber's frame is that text with its own
subscription ``id`` put around it. And subscribers whose frames differ only in that ``id``
(live/direct.py) mostly do not send their own: one of them sends, and its frame is written to
the others' sockets directly (``KeepAsgiSend`` keeps the server's own ``send`` for that).
While idle, those others need no task at all: their operation ends with ``Parked`` and is run
again (``KeepAliveTransportWSHandler._restart``) when it must deliver an event itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
)

from graphql_api import wire_json
from graphql_api.context import Context
from graphql_api.limits.connections import ConnectionCounter
from graphql_api.live.direct import DirectTarget, FrameWriter, current_target
from graphql_api.live.subscriber import Parked
from graphql_api.responses import graphql_error_response

log = logging.getLogger("mltrain.websocket")

#: Close code for a refused handshake where the server cannot answer with an HTTP 403.
POLICY_VIOLATION = 1008

#: Scope key: the ASGI ``send`` the server gave a WebSocket connection (``KeepAsgiSend``).
ASGI_SEND = "mltrain.asgi_send"


class KeepAsgiSend:
    """Keeps a WebSocket's ``send`` as the server gave it (before Starlette wraps it), so that
    live/direct.py can write frames to the server's protocol object behind it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[ASGI_SEND] = send
        await self.app(scope, receive, send)


class KeepAliveTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, plus a ``ping`` every ``view.keep_alive_interval`` seconds, and
    ``next`` messages built around a result encoded once."""

    #: The next ping, a timer rather than a sleeping task per connection: a task and its
    #: coroutine cost ~2 KiB per idle subscriber, a timer handle a tenth of that.
    _keep_alive: asyncio.TimerHandle | None = None
    #: A ping being sent (exists only while it is).
    _pinging: asyncio.Task[None] | None = None
    _closed = False
    #: Writes frames straight to the connection (None: cannot, or not looked up yet).
    _writer: FrameWriter | None = None
    _writer_known = False

    #: Each running operation's ``DirectTarget`` (by id), made on first run, kept while the
    #: operation is registered: a parked subscription's operation restarts with it.
    _targets: dict[str, DirectTarget] | None = None

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # The operation's own task: what the feed reads to let its subscription's frames be
        # written directly by another subscriber's delivery (live/direct.py).
        writer = self._frame_writer()
        if writer is not None:
            if self._targets is None:
                self._targets = {}
            target = self._targets.get(operation.id)
            if target is None:
                restart = functools.partial(self._restart, operation)
                target = DirectTarget(writer, operation.id, next_frame, restart)
                self._targets[operation.id] = target
            current_target.set(target)
        try:
            await super().run_operation(operation)
        except Parked:
            # Idle, in a delivery group: its subscriber stays there as a record, and this task
            # (and its chain of generators) ends. ``_restart`` runs the operation again when it
            # must deliver an event itself; the client sees nothing of it.
            return

    def _restart(self, operation: Operation[Context, None]) -> None:
        """Run a parked subscription's operation again (it continues where its subscriber is);
        if it is no longer registered (completed, or the connection is closing), drop the
        subscriber's record instead."""
        target = (self._targets or {}).get(operation.id)
        if self._closed or self.operations.get(operation.id) is not operation:
            feed = self.context.feed
            if feed is not None and target is not None and target.subscriber is not None:
                feed.forget(target.subscriber)
            return
        operation.task = asyncio.create_task(self.run_operation(operation))
        operation.task.add_done_callback(self._task_done)

    def forget_id(self, id: str) -> None:
        super().forget_id(id)
        self._forget_target(id)

    async def cleanup_operation(self, operation_id: str) -> None:
        await super().cleanup_operation(operation_id)
        self._forget_target(operation_id)

    def _forget_target(self, operation_id: str) -> None:
        target = self._targets.pop(operation_id, None) if self._targets else None
        subscriber = None if target is None else target.subscriber
        if subscriber is not None and self.context.feed is not None:
            # Parked, or restarted but not yet running (a cancelled task that never started
            # runs no ``finally``): no consumer will take it out of the feed. Idempotent.
            self.context.feed.forget(subscriber)

    def _frame_writer(self) -> FrameWriter | None:
        if not self._writer_known:
            self._writer_known = True
            scope = getattr(getattr(self.websocket, "ws", None), "scope", None) or {}
            feed = self.context.feed
            batches = None if feed is None else feed.groups.batches
            self._writer = FrameWriter.of(scope.get(ASGI_SEND), batches)
        return self._writer

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._keep_alive is None:
            self._schedule_ping()

    def _schedule_ping(self) -> None:
        if not self._closed:
            interval = float(self.view.keep_alive_interval or 15)
            self._keep_alive = asyncio.get_running_loop().call_later(interval, self._ping)

    def _ping(self) -> None:
        self._pinging = asyncio.ensure_future(self._send_ping())

    async def _send_ping(self) -> None:
        try:
            await self.send_message({"type": "ping"})
        except Exception:
            return  # the socket is closing; shutdown() ends the pings
        self._pinging = None
        self._schedule_ping()

    async def shutdown(self) -> None:
        self._closed = True
        if self._keep_alive is not None:
            self._keep_alive.cancel()
        if self._pinging is not None:
            self._pinging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinging
        await super().shutdown()

    async def send_message(self, message: Message) -> None:
        if self._writer is not None:
            # Frames written directly for this connection and not yet flushed go first.
            self._writer.flush()
        if message["type"] == "next":
            payload = message["payload"]
            # Only a plain result (no errors: a masked error carries this subscriber's own
            # request id; no extensions) is the same for every subscriber of an execution.
            feed = self.context.feed
            send_text = getattr(self.websocket, "send_text", None)
            if feed is not None and send_text is not None and payload.keys() == {"data"}:
                data = feed.encodings.encode(payload["data"])
                target = current_target.get()
                if target is not None and target.subscriber is not None:
                    # Its followers get the same frame, with their own ids (live/direct.py);
                    # first, so that a send stalled on this socket stalls none of them.
                    target.subscriber.sent_plain(data)
                await send_text(next_frame(message["id"], data))
                return
        await super().send_message(message)


def next_frame(operation_id: str, encoded_data: str) -> str:
    """A graphql-transport-ws ``next`` message whose ``payload`` is ``{"data": <encoded>}``."""
    encoded_id = wire_json.encode(operation_id)
    return f'{{"id":{encoded_id},"type":"next","payload":{{"data":{encoded_data}}}}}'


async def refuse_origin(websocket: WebSocket) -> None:
    """Refuse a handshake from a page whose origin is not allowed, saying why."""
    origin = websocket.headers.get("origin")
    reason = (
        f"WebSocket refused: origin {origin} is not allowed "
        "(the server's MLTRAIN_ALLOWED_ORIGINS lists the allowed ones)"
    )
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        # An HTTP 403 with the reason in its body (ASGI denial response extension).
        await websocket.send_denial_response(PlainTextResponse(reason, status_code=403))
    else:
        # Closing before accepting also refuses with 403; the reason may not reach the client.
        await websocket.close(
            code=POLICY_VIOLATION, reason=reason.encode()[:123].decode(errors="ignore")
        )


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def refuse_too_many(websocket: WebSocket, address: str, addresses: ConnectionCounter) -> None:
    """Refuse a handshake past the per-address cap: HTTP 429 with the reason in the body."""
    reason = (
        f"Too many WebSocket connections from {address}: the limit is {addresses.max_per_key} "
        "(MLTRAIN_MAX_CONNECTIONS_PER_ADDRESS)."
    )
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        limit = {"code": "LIMIT_EXCEEDED", "limit": "maxConnectionsPerAddress"}
        await websocket.send_denial_response(
            graphql_error_response(429, reason, {**limit, "max": addresses.max_per_key})
        )
    else:
        await websocket.close(
            code=POLICY_VIOLATION, reason=reason.encode()[:123].decode(errors="ignore")
        )
