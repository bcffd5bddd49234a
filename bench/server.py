"""Bench-only app factory: ``uvicorn --factory bench.server:create_app``.

With ``MLTRAIN_MONGODB_URI`` unset the database is the in-memory mock, which lives inside the
server process, so the data set is seeded there at start-up (``MLTRAIN_BENCH_SEED_JOBS`` jobs,
``MLTRAIN_BENCH_SEED_PENDING`` PENDING jobs for the mutation bench). With a URI, seed the
server beforehand with ``python -m bench.seed``; the factory then only serves.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from bench.seed import seed
from graphql_api.app import create_app as create_project_app
from graphql_api.gc_tuning import tune_for_serving
from graphql_api.settings import get_settings
from graphql_api.storage.mongo import MongoStorage


def create_app() -> Starlette:
    app = _create_app()
    tune_for_serving()  # as `mltrain serve` does before it serves
    return app


def _create_app() -> Starlette:
    settings = get_settings()
    jobs = int(os.environ.get("MLTRAIN_BENCH_SEED_JOBS", "0"))
    pending = int(os.environ.get("MLTRAIN_BENCH_SEED_PENDING", "0"))
    if not jobs and not pending:
        return create_project_app(settings)
    storage = MongoStorage.connect(
        settings.mongodb_uri, settings.mongodb_database, settings.guarded_updates
    )
    app = create_project_app(settings, storage=storage)
    project_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with project_lifespan(app):
            print("bench seed:", await seed(storage, jobs, pending), flush=True)
            yield
        await storage.close()

    app.router.lifespan_context = lifespan
    return app
