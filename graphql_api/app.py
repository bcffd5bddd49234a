"""The Starlette application: one GraphQL endpoint (GraphiQL on GET, subscriptions over
WebSocket), a health check, and the live change feed that subscriptions read."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from graphql_api import wire_json
from graphql_api.auth.http import RequireApiKey, scope_key
from graphql_api.auth.keys import KeyRing
from graphql_api.auth.ws import (
    ExplainingWebSocketAdapter,
    authenticate_connection,
    release_connection,
)
from graphql_api.context import Context
from graphql_api.limits.body import BodySizeLimit
from graphql_api.limits.connections import ConnectionCounter
from graphql_api.limits.rules import QueryLimits
from graphql_api.live.feed import ChangeFeed
from graphql_api.live.notify import NotifyingStorage
from graphql_api.schema import build_schema
from graphql_api.services.container import Services
from graphql_api.settings import Settings, get_settings
from graphql_api.storage.base import Storage
from graphql_api.storage.mongo import MongoStorage
from graphql_api.websocket import KeepAliveTransportWSHandler, refuse_origin

log = logging.getLogger("mltrain")

OPEN_ACCESS_WARNING = (
    "authentication is OFF: no API keys configured (MLTRAIN_API_KEYS / MLTRAIN_API_KEYS_FILE), "
    "every client may do everything. Only safe on loopback; see docs/security.md."
)

IN_MEMORY_WARNING = (
    "MLTRAIN_MONGODB_URI is not set: using an embedded in-memory MongoDB. "
    "DATA IS NOT KEPT and is lost when the server stops. Set MLTRAIN_MONGODB_URI for real use."
)


class GraphQLEndpoint(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = KeepAliveTransportWSHandler
    websocket_adapter_class = ExplainingWebSocketAdapter

    def __init__(
        self, *args: Any, keys: KeyRing, connections: ConnectionCounter, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.keys = keys
        self.connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if scope["type"] == "websocket":
                release_connection(scope, self.connections)

    def encode_json(self, data: object) -> str:
        return wire_json.encode(data)

    def decode_json(self, data: str | bytes) -> object:
        return wire_json.decode(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except json.JSONDecodeError as error:  # Strawberry's own 400 does not say what is wrong
            raise HTTPException(400, f"Unable to parse request body as JSON: {error}") from error

    async def get_context(self, request: Any, response: Any) -> Context:
        services: Services = request.app.state.services
        context = Context.for_request(services, request, response)
        context.feed = request.app.state.feed
        # HTTP: RequireApiKey verified the key; WebSocket: on_ws_connect does.
        context.open_access = not self.keys.enabled
        context.api_key = scope_key(request.scope)
        context.actor = context.api_key.name if context.api_key else None
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | None:
        key = authenticate_connection(
            context.request.scope, context.connection_params, self.keys, self.connections
        )
        context.api_key = key
        context.actor = key.name if key else None
        return UNSET  # type: ignore[no-any-return]  # (an ack without a payload)

    async def reject_websocket(self, request: WebSocket) -> WebSocket:
        await refuse_origin(request)
        return request


def create_app(
    settings: Settings | None = None,
    storage: Storage | None = None,
    *,
    demo: bool = False,
    keys: KeyRing | None = None,
) -> Starlette:
    """The ASGI app. ``storage`` overrides the one the settings name (tests pass their own);
    so does ``keys`` (by default loaded from the settings; none configured = open access)."""
    settings = settings or get_settings()
    keys = keys if keys is not None else KeyRing.load(settings.api_keys, settings.api_keys_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = storage or MongoStorage.connect(settings.mongodb_uri, settings.mongodb_database)
        if settings.in_memory and storage is None:
            log.warning(IN_MEMORY_WARNING)
        await store.ensure_indexes()
        if keys.enabled:
            log.info(
                "authentication ON: %d API keys (%s)",
                len(keys.keys),
                ", ".join(f"{k.name}={k.role.value}" for k in keys.keys),
            )
        else:
            log.warning(OPEN_ACCESS_WARNING)
        feed = ChangeFeed(
            store.events,
            poll_interval=settings.feed_poll_interval,
            gap_grace=settings.feed_gap_grace,
            buffer=settings.subscriber_buffer,
            max_lag=settings.subscriber_max_lag,
        )
        await feed.start()
        # This process's appends wake the feed at once; other instances' reach it by polling.
        services = Services.over(NotifyingStorage(store, feed.notify))
        app.state.services = services
        app.state.feed = feed
        try:
            if demo:
                from graphql_api.demo import seed_demo

                summary = await seed_demo(services)
                log.info("demo data: %s", summary)
            yield
        finally:
            await feed.stop()
            if storage is None:
                await store.close()

    limits = QueryLimits(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_root_fields=settings.max_root_fields,
        max_tokens=settings.max_tokens,
    )
    graphql = GraphQLEndpoint(
        build_schema(limits, introspection=settings.introspection),
        keys=keys,
        connections=ConnectionCounter(settings.max_connections_per_key),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        graphql_ide="graphiql" if settings.graphiql else None,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        keep_alive=True,  # graphql-ws "ka"; graphql-transport-ws pings: KeepAliveTransportWSHandler
        keep_alive_interval=settings.ws_keep_alive_interval,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
        allowed_origins=settings.allowed_origins,
    )

    async def health(request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        await services.storage.ping()
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(
                "/graphql",
                RequireApiKey(
                    BodySizeLimit(graphql, settings.max_body_bytes),
                    keys,
                    ide_page=settings.graphiql,
                ),
                methods=["GET", "POST"],
            ),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", health),
        ],
        lifespan=lifespan,
    )
