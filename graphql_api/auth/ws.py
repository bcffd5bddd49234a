"""WebSocket authentication: the key comes in the ``connection_init`` payload.

Browsers cannot set headers on a WebSocket, so clients send
``{"Authorization": "Bearer <key>"}`` (any case of the name; a bare key is accepted too) as the
payload of ``connection_init``. A refused connection is closed with a code and a reason that
says why: Strawberry's own rejection always says "Forbidden" (4403), so the reason is kept in
the ASGI scope and the adapter uses it when Strawberry closes the socket.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, MutableMapping
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived

from graphql_api import wire_json
from graphql_api.auth.keys import ApiKey, bearer_secret
from graphql_api.auth.rate_limit import (
    RATE_LIMITED_CLOSE,
    RateLimited,
    RateLimits,
    charge,
    holder_of,
    mutation_cost,
)
from graphql_api.auth.stored_keys import Keys
from graphql_api.limits.connections import ConnectionCounter
from graphql_api.websocket import client_address

REJECTION = "mltrain.ws_rejection"
#: Messages that start an operation (graphql-transport-ws, graphql-ws).
STARTS = frozenset({"subscribe", "start"})
COUNTED_KEY = "mltrain.ws_key"
BAD_MESSAGE = 4400
UNAUTHORIZED = 4401
TOO_MANY = 4429


def _secret(params: object) -> str | None:
    if not isinstance(params, dict):
        return None
    for name, value in params.items():
        if isinstance(name, str) and name.lower() in {"authorization", "apikey", "api_key"}:
            if not isinstance(value, str):
                return None
            return bearer_secret(value) or (value.strip() or None)
    return None


def reject(scope: MutableMapping[str, Any], code: int, reason: str) -> ConnectionRejectionError:
    scope[REJECTION] = (code, reason)
    return ConnectionRejectionError({"message": reason, "code": code})


def authenticate_connection(
    scope: MutableMapping[str, Any],
    params: object,
    keys: Keys,
    connections: ConnectionCounter,
) -> ApiKey | None:
    """The connection's key (None in open mode); raises ConnectionRejectionError to refuse."""
    if not keys.enabled:
        return None
    key = keys.verify(_secret(params))
    if key is None:
        raise reject(
            scope,
            UNAUTHORIZED,
            "Unauthenticated: send a valid API key as connection_init payload "
            '{"Authorization": "Bearer <key>"}',
        )
    if not connections.acquire(key.name):
        raise reject(
            scope,
            TOO_MANY,
            f"Too many connections for key {key.name}: the limit is "
            f"{connections.max_per_key} (MLTRAIN_MAX_CONNECTIONS_PER_KEY)",
        )
    scope[COUNTED_KEY] = key.name
    return key


def release_connection(scope: MutableMapping[str, Any], connections: ConnectionCounter) -> None:
    name = scope.pop(COUNTED_KEY, None)
    if name is not None:
        connections.release(name)


STRAWBERRY_SUBSCRIPTION_LIMIT = "Subscription limit reached"


def subscription_limit_error(maximum: int | None) -> dict[str, object]:
    return {
        "message": f"Too many subscriptions on this connection: the limit is {maximum} "
        "(maxSubscriptionsPerConnection, MLTRAIN_MAX_SUBSCRIPTIONS_PER_CONNECTION).",
        "extensions": {
            "code": "LIMIT_EXCEEDED",
            "limit": "maxSubscriptionsPerConnection",
            "max": maximum,
        },
    }


class ExplainingWebSocketAdapter(ASGIWebSocketAdapter):
    """Says why, where Strawberry is terse: closes with the recorded rejection's code and
    reason (not a generic "Forbidden"), names the limit in the subscription-limit error, and
    refuses a message that is not a JSON object (too deep, not UTF-8, ``42``) with 4400 and
    the rule it broke, where Strawberry's handlers would fail on it and drop the socket."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        # Strawberry's loop, with the reason kept: graphql-transport-ws closes with 4400 on a
        # NonJsonMessageReceived; the legacy graphql-ws protocol ignores such messages.
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                try:
                    message = self.view.decode_json(text)
                except json.JSONDecodeError as error:
                    reason = f"WebSocket message must be valid JSON: {error}"
                else:
                    if isinstance(message, dict):
                        refused = self._over_rate(message)
                        if refused is not None:
                            await self.ws.close(RATE_LIMITED_CLOSE, refused[:123])
                            return
                        yield message
                        continue
                    reason = (
                        "WebSocket message must be a JSON object with a type, got "
                        f"{wire_json.kind(message)}"
                    )
                if not ignore_parsing_errors:
                    self.ws.scope[REJECTION] = (BAD_MESSAGE, reason)
                    raise NonJsonMessageReceived
        except KeyError as error:  # a binary frame has no "text"
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass

    def _over_rate(self, message: dict[str, Any]) -> str | None:
        """Why an operation started over this socket is over its key's (or address's) rate,
        or None: each ``subscribe``/``start`` takes a request token, and a mutation's root
        fields take mutation tokens (auth/rate_limit.py)."""
        limits: RateLimits | None = getattr(self.view, "rate_limits", None)
        if limits is None or not limits.enabled or message.get("type") not in STARTS:
            return None
        payload = message.get("payload")
        query = payload.get("query") if isinstance(payload, dict) else None
        name = payload.get("operationName") if isinstance(payload, dict) else None
        holder = holder_of(self.ws.scope.get(COUNTED_KEY), client_address(self.ws.scope))
        cost = 0
        if limits.mutations.enabled:
            cost = mutation_cost(
                query if isinstance(query, str) else None,
                name if isinstance(name, str) else None,
                getattr(self.view, "max_tokens", 2000),
            )
        try:
            charge(limits, holder, cost)
        except RateLimited as refused:
            return refused.message
        return None

    async def send_json(self, message: Mapping[str, object]) -> None:
        if message.get("type") == "error" and STRAWBERRY_SUBSCRIPTION_LIMIT in str(
            message.get("payload")
        ):
            error = subscription_limit_error(self.view.max_subscriptions_per_connection)
            payload = [error] if isinstance(message.get("payload"), list) else error
            message = {**message, "payload": payload}
        await super().send_json(message)

    async def close(self, code: int, reason: str) -> None:
        code, reason = self.ws.scope.pop(REJECTION, (code, reason))
        await super().close(code, reason.encode()[:123].decode(errors="ignore"))
