"""WebSocket transport details of /graphql: keep-alive pings and refused origins.

Strawberry speaks both subscription protocols on one path. The legacy graphql-ws protocol has
its own keep-alive ("ka") messages; graphql-transport-ws lets either side ping, but Strawberry's
handler only answers pings, so ``KeepAliveTransportWSHandler`` also sends them. Together with
the WebSocket-level pings of ``mltrain serve`` (which drop dead peers), this keeps proxies from
closing a quiet subscription and tells clients the server is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage

from graphql_api.context import Context

log = logging.getLogger("mltrain.websocket")

#: Close code for a refused handshake where the server cannot answer with an HTTP 403.
POLICY_VIOLATION = 1008


class KeepAliveTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, plus a ``ping`` every ``view.keep_alive_interval`` seconds."""

    _keep_alive: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._keep_alive is None:
            self._keep_alive = asyncio.create_task(self._ping_periodically())

    async def _ping_periodically(self) -> None:
        interval = float(self.view.keep_alive_interval or 15)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.send_message({"type": "ping"})
            except Exception:
                return  # the socket is closing; shutdown() ends this task

    async def shutdown(self) -> None:
        if self._keep_alive is not None:
            self._keep_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keep_alive
        await super().shutdown()


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
