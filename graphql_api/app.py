"""The Starlette application: one GraphQL endpoint (GraphiQL on GET), a health check."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from graphql_api.context import Context
from graphql_api.schema import schema
from graphql_api.services.container import Services
from graphql_api.settings import Settings, get_settings
from graphql_api.storage.base import Storage
from graphql_api.storage.mongo import MongoStorage

log = logging.getLogger("mltrain")

IN_MEMORY_WARNING = (
    "MLTRAIN_MONGODB_URI is not set: using an embedded in-memory MongoDB. "
    "DATA IS NOT KEPT and is lost when the server stops. Set MLTRAIN_MONGODB_URI for real use."
)


class GraphQLEndpoint(GraphQL[Context, None]):
    async def get_context(self, request: Any, response: Any) -> Context:
        services: Services = request.app.state.services
        return Context.for_request(services, request, response)


def create_app(
    settings: Settings | None = None,
    storage: Storage | None = None,
    *,
    demo: bool = False,
) -> Starlette:
    """The ASGI app. ``storage`` overrides the one the settings name (tests pass their own)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = storage or MongoStorage.connect(settings.mongodb_uri, settings.mongodb_database)
        if settings.in_memory and storage is None:
            log.warning(IN_MEMORY_WARNING)
        await store.ensure_indexes()
        services = Services.over(store)
        app.state.services = services
        if demo:
            from graphql_api.demo import seed_demo

            summary = await seed_demo(services)
            log.info("demo data: %s", summary)
        try:
            yield
        finally:
            if storage is None:
                await store.close()

    graphql = GraphQLEndpoint(
        schema,
        graphql_ide="graphiql" if settings.graphiql else None,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
    )

    async def health(request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        await services.storage.ping()
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", health),
        ],
        lifespan=lifespan,
    )
