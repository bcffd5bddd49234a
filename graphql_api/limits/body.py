"""A cap on HTTP request bodies, enforced while they stream in.

``Content-Length`` above the cap is refused before reading anything; a chunked body is counted
as it arrives and refused once past the cap, so the server never buffers more than the cap.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphql_api.responses import graphql_error_response


def too_large(max_bytes: int) -> Response:
    return graphql_error_response(
        413,
        f"Request body larger than {max_bytes} bytes (maxBodyBytes, MLTRAIN_MAX_BODY_BYTES).",
        {"code": "LIMIT_EXCEEDED", "limit": "maxBodyBytes", "max": max_bytes},
    )


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await too_large(self.max_bytes)(scope, receive, send)
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await too_large(self.max_bytes)(scope, receive, send)
