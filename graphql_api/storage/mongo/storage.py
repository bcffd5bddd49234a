"""The storage contract over one MongoDB database."""

from __future__ import annotations

import logging
from typing import Any

import pymongo

from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo.api_keys import MongoApiKeyStore
from graphql_api.storage.mongo.client import DEFAULT_TIMEOUT, close, connect
from graphql_api.storage.mongo.collection import UpdateGuard
from graphql_api.storage.mongo.events import MongoEventStore
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.leaders import MongoLeaderStore
from graphql_api.storage.mongo.metric_series import MongoMetricSeriesStore
from graphql_api.storage.mongo.model_versions import MongoModelVersionStore
from graphql_api.storage.mongo.server import (
    ServerInfo,
    ServerKind,
    identify,
    sort_windows_wanted,
    update_guard_wanted,
)
from graphql_api.storage.mongo.training_jobs import MongoTrainingJobStore
from graphql_api.storage.mongo.webhooks import MongoWebhookStore
from graphql_api.storage.mongo.windows import SortWindows

log = logging.getLogger("mltrain.storage")

#: Seconds a ping may take: /healthz answers within a second whatever the operation bound.
PING_TIMEOUT = 0.6


@bounded_methods
class MongoStorage:
    """The storage contract over one MongoDB database.

    ``timeout`` bounds each storage method (None: unbounded, for the in-memory mock); past it,
    or when the database cannot be reached, the method raises ``DatabaseUnavailable``.

    ``guarded_updates``: None decides by the server (``server.update_guard_wanted``);
    True/False forces the claim guard on/off (``MLTRAIN_UPDATE_GUARD``). ``windowed_sorts``
    likewise for sorted pages read in windows (``windows.py``, ``MLTRAIN_WINDOWED_SORTS``).
    """

    def __init__(
        self,
        database: Any,
        guarded_updates: bool | None = None,
        timeout: float | None = None,
        windowed_sorts: bool | None = None,
    ) -> None:
        self._db = database
        self.timeout = timeout
        #: Learned at start-up (``ensure_indexes``).
        self.server = ServerInfo(ServerKind.MONGODB, "unknown")
        self.stats = StoreStats()
        self.guard = UpdateGuard(database["update_claims"], self.stats)
        self._guarded_updates = guarded_updates
        self.windows = SortWindows()
        self._windowed_sorts = windowed_sorts
        self.model_versions = MongoModelVersionStore(
            database["model_versions"], database["model_registry"], self.stats, self.guard
        )
        self.training_jobs = MongoTrainingJobStore(
            database["training_jobs"], self.stats, self.guard
        )
        self.events = MongoEventStore(
            database["events"], database["counters"], self.stats, self.guard
        )
        self.leaders = MongoLeaderStore(database["leaders"], self.stats, self.guard)
        self.metric_series = MongoMetricSeriesStore(
            database["metric_buckets"],
            database["metric_summaries"],
            database["training_jobs"],
            self.stats,
            self.guard,
        )
        self.api_keys = MongoApiKeyStore(
            database["api_keys"],
            database["api_key_revision"],
            database["model_versions"],
            # Its own count: every instance reads the keys' revision in the background, which
            # is no request's cost (the request counts above stay exact).
            StoreStats(),
            self.guard,
        )
        self.webhooks = MongoWebhookStore(
            database["webhooks"],
            database["webhook_deliveries"],
            # Its own count, as the keys': deliveries run in the background, no request's cost.
            StoreStats(),
            self.guard,
        )
        stores = (
            self.webhooks,
            self.model_versions,
            self.training_jobs,
            self.events,
            self.metric_series,
            self.api_keys,
            self.leaders,
        )
        for store in stores:
            store.timeout = timeout
            store.windows = self.windows

    @property
    def database(self) -> Any:
        """The driver's database, for tools and tests that must reach past the contract: seed
        documents no API call writes (damaged or written by an older version), explain a
        query, drop a test database. The application goes through the stores."""
        return self._db

    @classmethod
    def connect(
        cls,
        uri: str | None,
        database: str,
        guarded_updates: bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        windowed_sorts: bool | None = None,
    ) -> MongoStorage:
        """``timeout``: seconds any storage operation may take (MLTRAIN_MONGODB_TIMEOUT)."""
        return cls(
            connect(uri, database, timeout),
            guarded_updates,
            timeout if uri else None,
            windowed_sorts,
        )

    async def ensure_indexes(self) -> None:
        """Start-up: learn what the server guarantees, then create the indexes (idempotent)."""
        await self.identify_server()
        await self.model_versions.ensure_indexes()
        await self.training_jobs.ensure_indexes()
        # Once after an upgrade on DocumentDB: unordered compound indexes rebuilt ordered.
        await self.training_jobs.rebuild_unordered_indexes()
        await self.events.ensure_indexes()
        await self.metric_series.ensure_indexes()
        # Not the webhooks' delivery log indexes: made by the first createWebhook instead (a
        # start-up is bounded by the operation timeout as a whole, and creating two more
        # collections' indexes on DocumentDB pushed loaded test runs past it).

    async def identify_server(self) -> None:
        """Learn which server this is and decide what it needs (the update guard, windows)."""
        self.server = identify(await self._db.command("buildInfo"))
        self.guard.enabled = update_guard_wanted(self.server, self._guarded_updates)
        log.info(
            "database server: %s; conditional updates %s",
            self.server,
            "through the claim guard" if self.guard.enabled else "plain (atomic per document)",
        )
        self.windows.enabled = sort_windows_wanted(self.server, self._windowed_sorts)
        self.training_jobs.ordered_indexes = self.server.needs_ordered_indexes
        log.info(
            "sorted pages: %s",
            "in windows of the sort key" if self.windows.enabled else "plain sorts",
        )

    async def ping(self) -> None:
        with pymongo.timeout(min(self.timeout or PING_TIMEOUT, PING_TIMEOUT)):
            await self._db.command("ping")

    async def close(self) -> None:
        await close(self._db)
