"""The Starlette application: one GraphQL endpoint (GraphiQL on GET, subscriptions over
WebSocket), a health check, the browser UI (graphql_api/ui), and the live change feed that
subscriptions read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.types.unset import UNSET, UnsetType

from graphql_api import wire_json
from graphql_api.auth.hosts import LocalHostsOnly
from graphql_api.auth.http import RequireApiKey, scope_key
from graphql_api.auth.keys import KeyRing
from graphql_api.auth.rate_limit import (
    CURRENT_HOLDER,
    LimitRequests,
    RateLimited,
    RateLimiter,
    RateLimits,
    charge,
    mutation_cost,
)
from graphql_api.auth.stored_keys import KeyDirectory
from graphql_api.auth.ws import (
    ExplainingWebSocketAdapter,
    authenticate_connection,
    release_connection,
)
from graphql_api.context import Context
from graphql_api.domain.events import ChangeEvent
from graphql_api.graphiql import graphiql_page
from graphql_api.http_subscriptions import (
    NOT_OVER_PLAIN_HTTP,
    accepts_multipart,
    ending_when,
    is_subscription,
)
from graphql_api.limits.body import BodySizeLimit
from graphql_api.limits.connections import ConnectionCounter
from graphql_api.limits.rules import QueryLimits
from graphql_api.live.feed import ChangeFeed
from graphql_api.live.notify import NotifyingStorage
from graphql_api.live.relay import OutboxSweep
from graphql_api.live.retention import LogRetention
from graphql_api.responses import graphql_error_response
from graphql_api.schema import build_schema
from graphql_api.services.container import Services
from graphql_api.services.liveness import LivenessSweep
from graphql_api.services.outbox import Outbox
from graphql_api.settings import Settings, get_settings
from graphql_api.storage.base import DatabaseUnavailable, Storage
from graphql_api.storage.mongo import MongoStorage
from graphql_api.ui import ui_routes
from graphql_api.webhooks.dispatcher import WebhookDispatcher
from graphql_api.webhooks.http import HttpSender
from graphql_api.webhooks.retry import RetryPolicy
from graphql_api.websocket import (
    KeepAliveTransportWSHandler,
    KeepAsgiSend,
    client_address,
    refuse_origin,
    refuse_too_many,
)

log = logging.getLogger("mltrain")

OPEN_ACCESS_WARNING = (
    "authentication is OFF: no API keys configured (MLTRAIN_API_KEYS / MLTRAIN_API_KEYS_FILE), "
    "every client may do everything. Only safe on loopback; see docs/security.md."
)

IN_MEMORY_WARNING = (
    "MLTRAIN_MONGODB_URI is not set: using an embedded in-memory MongoDB. "
    "DATA IS NOT KEPT and is lost when the server stops. Set MLTRAIN_MONGODB_URI for real use."
)


#: Seconds /healthz waits for the database before answering 503 (its answer: within 1 s).
HEALTH_TIMEOUT = 0.8

#: Where a subscription stream keeps its connection slot in the ASGI scope.
STREAM_SLOT = "mltrain.stream_slot"

#: Where a WebSocket opened with a stored key keeps (key name, socket) for its unregistering.
REGISTERED_SOCKET = "mltrain.registered_socket"

#: Where a subscription stream opened with a stored key keeps (key name, the future that ends
#: it) for its unregistering.
WATCHED_STREAM = "mltrain.watched_stream"

#: ``extensions.code`` of the HTTP refusals Strawberry makes before any GraphQL work.
HTTP_ERROR_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


class GraphQLEndpoint(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = KeepAliveTransportWSHandler
    websocket_adapter_class = ExplainingWebSocketAdapter

    def __init__(
        self,
        *args: Any,
        keys: KeyDirectory,
        connections: ConnectionCounter,
        addresses: ConnectionCounter,
        max_tokens: int,
        rate_limits: RateLimits,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rate_limits = rate_limits
        self.keys = keys
        self.connections = connections
        self.addresses = addresses
        self.max_tokens = max_tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._serve_http(scope, receive, send)
            return
        if scope["type"] == "websocket" and not self.keys.enabled:
            # Open mode has no key to count by: count by client address, from the handshake
            # on (an idle socket that never sends connection_init counts too).
            address = client_address(scope)
            if not self.addresses.acquire(address):
                await refuse_too_many(WebSocket(scope, receive, send), address, self.addresses)
                return
            try:
                await super().__call__(scope, receive, send)
            finally:
                self.addresses.release(address)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            if scope["type"] == "websocket":
                release_connection(scope, self.connections)
                registered = scope.pop(REGISTERED_SOCKET, None)
                if registered is not None:
                    self.keys.unregister_socket(*registered)

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's HTTP handling, with its refusals (400, 404, 405) in the GraphQL
        response shape instead of plain text, so every client error is JSON that says why."""
        response: Response
        try:
            try:
                response = await self.run(Request(scope, receive))
            except RateLimited as refusal:
                response = refusal.response()
            except HTTPException as refusal:
                response = graphql_error_response(
                    refusal.status_code,
                    refusal.reason,
                    {"code": HTTP_ERROR_CODES.get(refusal.status_code, "BAD_REQUEST")},
                )
            await response(scope, receive, send)  # a subscription streams until it ends
        finally:
            slot: tuple[ConnectionCounter, str] | None = scope.pop(STREAM_SLOT, None)
            if slot is not None:
                slot[0].release(slot[1])
            watched: tuple[str, asyncio.Future[str]] | None = scope.pop(WATCHED_STREAM, None)
            if watched is not None:
                self.keys.unwatch_stream(*watched)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """A subscription over HTTP is streamed as multipart if the client accepts that, else
        refused with the reason (graphql_api/http_subscriptions.py)."""
        data = await super().parse_http_body(request)
        holder = CURRENT_HOLDER.get()
        if (
            isinstance(data, GraphQLRequestData)
            and holder is not None
            and self.rate_limits.mutations.enabled
        ):
            # The mutation cost bucket (the request token was taken by LimitRequests).
            cost = mutation_cost(data.query, data.operation_name, self.max_tokens)
            charge(self.rate_limits, holder, cost, request=False)
        if (
            isinstance(data, GraphQLRequestData)
            and data.protocol == "http"
            and is_subscription(data.query, data.operation_name, self.max_tokens)
        ):
            if not accepts_multipart(request.headers.get("accept", "")):
                raise HTTPException(400, NOT_OVER_PLAIN_HTTP)
            data.protocol = "multipart-subscription"
        return data

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        """A subscription stream holds a connection slot, like a WebSocket: per key, or per
        client address in open mode; ``_serve_http`` frees it when the stream ends."""
        key = scope_key(request.scope)
        counter, holder = (
            (self.connections, key.name)
            if key is not None
            else (self.addresses, client_address(request.scope))
        )
        if not counter.acquire(holder):
            setting = "PER_KEY" if key is not None else "PER_ADDRESS"
            limit = "maxConnectionsPerKey" if key is not None else "maxConnectionsPerAddress"
            return graphql_error_response(
                429,
                f"Too many connections for {holder}: the limit is {counter.max_per_key} "
                f"(MLTRAIN_MAX_CONNECTIONS_{setting}).",
                {"code": "LIMIT_EXCEEDED", "limit": limit, "max": counter.max_per_key},
            )
        request.scope[STREAM_SLOT] = (counter, holder)
        if key is not None and key.stored:
            # Ended when the key is revoked or expires, as its WebSockets are closed.
            ended = self.keys.watch_stream(key)
            request.scope[WATCHED_STREAM] = (key.name, ended)
            stream = ending_when(stream, ended, self.encode_json_string)
        return await super().create_streaming_response(request, stream, sub_response, headers)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_page())

    def encode_json(self, data: object) -> str:
        return wire_json.encode(data)

    def decode_json(self, data: str | bytes) -> object:
        return wire_json.decode(data)

    def parse_json(self, data: str | bytes) -> Any:
        """A request body (or the ``variables``/``extensions`` of a GET): an object, or a
        list that Strawberry refuses as a batch; anything else is a 400 saying so."""
        try:
            document = self.decode_json(data)
        except json.JSONDecodeError as error:  # Strawberry's own 400 does not say what is wrong
            raise HTTPException(400, f"Unable to parse the request's JSON: {error}") from error
        if not isinstance(document, dict | list):
            raise HTTPException(
                400,
                'Expected a JSON object (e.g. {"query": "{ __typename }"}), got '
                f"{wire_json.kind(document)}.",
            )
        return document

    async def get_context(self, request: Any, response: Any) -> Context:
        services: Services = request.app.state.services
        context = Context.for_request(services, request, response)
        context.feed = request.app.state.feed
        context.keys = self.keys
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
        if key is not None and key.stored:
            # Closed with 4403 when the key is revoked or expires (auth/stored_keys.py).
            websocket = context.request
            self.keys.register_socket(key, websocket)
            websocket.scope[REGISTERED_SOCKET] = (key.name, websocket)
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
    configured = (
        keys if keys is not None else KeyRing.load(settings.api_keys, settings.api_keys_file)
    )
    directory = KeyDirectory(
        configured,
        poll_interval=settings.key_poll_interval,
        last_used_interval=settings.key_last_used_interval,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = storage or MongoStorage.connect(
            settings.mongodb_uri,
            settings.mongodb_database,
            settings.guarded_updates,
            timeout=settings.mongodb_timeout,
            windowed_sorts=settings.sort_windows,
        )
        if settings.in_memory and storage is None:
            log.warning(IN_MEMORY_WARNING)
        await store.ensure_indexes()
        await directory.start(store.api_keys)
        if directory.enabled:
            log.info(
                "authentication ON: %d API keys (%s); %d stored in the database",
                len(configured.keys),
                ", ".join(f"{k.name}={k.role.value}" for k in configured.keys),
                len(directory.names) - len(configured.keys),
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
        webhook_send = HttpSender(
            allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout
        )
        webhook_policy = RetryPolicy(
            base=settings.webhook_retry_base,
            cap=settings.webhook_retry_cap,
            max_attempts=settings.webhook_max_attempts,
        )
        dispatcher = WebhookDispatcher(
            store,
            webhook_send,
            webhook_policy,
            poll_interval=settings.webhook_poll_interval,
            lease_seconds=settings.webhook_lease_seconds,
            gap_grace=settings.feed_gap_grace,
        )

        def appended(event: ChangeEvent) -> None:
            feed.notify(event)
            dispatcher.notify(event)

        # This process's appends wake the feed at once; other instances' reach it by polling.
        services = Services.over(
            NotifyingStorage(store, appended),
            configured_key_names=[k.name for k in configured.keys],
            webhook_send=webhook_send,
            webhook_policy=webhook_policy,
            allow_private_webhooks=settings.webhook_allow_private,
        )
        app.state.services = services
        retention = LogRetention(
            store.events,
            max_age=settings.event_retention_seconds or None,
            max_count=settings.event_retention_count or None,
            interval=settings.event_retention_interval,
            # Webhooks' delivery log entries of deleted events go with them.
            after_trim=services.webhooks.trim_deliveries,
        )
        await retention.start()
        app.state.retention = retention
        app.state.keys = directory
        app.state.feed = feed
        sweep = OutboxSweep(
            Outbox(services.storage, grace=settings.outbox_grace),
            interval=settings.outbox_sweep_interval,
            clear_relayed=services.training.clear_relayed_events,
        )
        await sweep.start()
        await dispatcher.start()
        app.state.webhooks = dispatcher
        liveness = LivenessSweep(
            services.training,
            store.leaders,
            interval=settings.sweep_interval,
            grace=settings.heartbeat_grace,
        )
        await liveness.start()
        app.state.sweep = liveness
        try:
            if demo:
                from graphql_api.demo import seed_demo

                summary = await seed_demo(services)
                log.info("demo data: %s", summary)
            yield
        finally:
            await liveness.stop()
            await dispatcher.stop()
            await webhook_send.aclose()
            await sweep.stop()
            await directory.stop()
            await retention.stop()
            await feed.stop()
            if storage is None:
                await store.close()

    rate_limits = RateLimits(
        requests=RateLimiter(settings.rate_limit_requests, settings.rate_limit_request_burst),
        mutations=RateLimiter(settings.rate_limit_mutations, settings.rate_limit_mutation_burst),
    )
    limits = QueryLimits(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_root_fields=settings.max_root_fields,
        max_tokens=settings.max_tokens,
        max_fields=settings.max_query_fields,
        max_field_comparisons=settings.max_field_comparisons,
    )
    graphql = GraphQLEndpoint(
        build_schema(limits, introspection=settings.introspection),
        keys=directory,
        connections=ConnectionCounter(settings.max_connections_per_key),
        addresses=ConnectionCounter(settings.max_connections_per_address),
        max_tokens=settings.max_tokens,
        rate_limits=rate_limits,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        graphql_ide="graphiql" if settings.graphiql else None,
        # WebSocket (both protocols), and HTTP multipart for GraphiQL and Apollo Client.
        subscription_protocols=(
            GRAPHQL_TRANSPORT_WS_PROTOCOL,
            GRAPHQL_WS_PROTOCOL,
            MULTIPART_SUBSCRIPTION_PROTOCOL,
        ),
        keep_alive=True,  # graphql-ws "ka"; graphql-transport-ws pings: KeepAliveTransportWSHandler
        keep_alive_interval=settings.ws_keep_alive_interval,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
        allowed_origins=settings.allowed_origins,
    )

    async def health(request: Request) -> JSONResponse:
        """200 if the database answers a ping, else 503 with the reason, within a second."""
        services: Services = request.app.state.services
        try:
            # The ping is bounded in the driver; this also bounds the wait for a driver thread.
            async with asyncio.timeout(HEALTH_TIMEOUT):
                await services.storage.ping()
        except DatabaseUnavailable as error:
            reason = f"database unavailable: {error.reason}"
        except TimeoutError:
            reason = f"database unavailable: no answer within {HEALTH_TIMEOUT:g} s"
        else:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)

    return Starlette(
        routes=[
            Route(
                "/graphql",
                RequireApiKey(
                    LimitRequests(BodySizeLimit(graphql, settings.max_body_bytes), rate_limits),
                    directory,
                    ide_page=settings.graphiql,
                ),
                methods=["GET", "POST"],
            ),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", health),
            *ui_routes(),  # the app at /, its files and GraphiQL's under /assets (no CDN)
        ],
        # Open mode: every route answers only requests addressed to this machine (DNS
        # rebinding); with keys, a rebinding page has no key to send.
        middleware=[Middleware(KeepAsgiSend)]  # outermost: the server's own send (direct frames)
        + (
            []
            if configured.enabled
            else [
                Middleware(
                    LocalHostsOnly,
                    allowed_hosts=settings.allowed_hosts,
                    keys_required=lambda: directory.enabled,
                )
            ]
        ),
        lifespan=lifespan,
    )
