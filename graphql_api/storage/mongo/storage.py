"""The storage contract over one MongoDB database."""

from __future__ import annotations

import logging
from typing import Any

from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo.client import connect
from graphql_api.storage.mongo.collection import UpdateGuard
from graphql_api.storage.mongo.events import MongoEventStore
from graphql_api.storage.mongo.model_versions import MongoModelVersionStore
from graphql_api.storage.mongo.server import ServerInfo, ServerKind, identify, update_guard_wanted
from graphql_api.storage.mongo.training_jobs import MongoTrainingJobStore

log = logging.getLogger("mltrain.storage")


class MongoStorage:
    """The storage contract over one MongoDB database."""

    def __init__(self, database: Any, guarded_updates: bool | None = None) -> None:
        """``guarded_updates``: None decides by the server (``server.update_guard_wanted``);
        True/False forces the claim guard on/off (``MLTRAIN_UPDATE_GUARD``)."""
        self._db = database
        #: Learned at start-up (``ensure_indexes``).
        self.server = ServerInfo(ServerKind.MONGODB, "unknown")
        self.stats = StoreStats()
        self.guard = UpdateGuard(database["update_claims"], self.stats)
        self._guarded_updates = guarded_updates
        self.model_versions = MongoModelVersionStore(
            database["model_versions"], database["model_registry"], self.stats, self.guard
        )
        self.training_jobs = MongoTrainingJobStore(
            database["training_jobs"], self.stats, self.guard
        )
        self.events = MongoEventStore(
            database["events"], database["counters"], self.stats, self.guard
        )

    @classmethod
    def connect(
        cls, uri: str | None, database: str, guarded_updates: bool | None = None
    ) -> MongoStorage:
        return cls(connect(uri, database), guarded_updates)

    async def ensure_indexes(self) -> None:
        """Start-up: learn what the server guarantees, then create the indexes (idempotent)."""
        self.server = identify(await self._db.command("buildInfo"))
        self.guard.enabled = update_guard_wanted(self.server, self._guarded_updates)
        log.info(
            "database server: %s; conditional updates %s",
            self.server,
            "through the claim guard" if self.guard.enabled else "plain (atomic per document)",
        )
        await self.model_versions.ensure_indexes()
        await self.training_jobs.ensure_indexes()
        await self.events.ensure_indexes()

    async def ping(self) -> None:
        await self._db.command("ping")

    async def close(self) -> None:
        self._db.client.close()
