"""The storage contract over one MongoDB database."""

from __future__ import annotations

from typing import Any

from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo.client import connect
from graphql_api.storage.mongo.collection import UpdateGuard
from graphql_api.storage.mongo.events import MongoEventStore
from graphql_api.storage.mongo.model_versions import MongoModelVersionStore
from graphql_api.storage.mongo.training_jobs import MongoTrainingJobStore


class MongoStorage:
    """The storage contract over one MongoDB database."""

    def __init__(self, database: Any, guarded_updates: bool | None = None) -> None:
        self._db = database
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
        if self._guarded_updates is None:
            info = await self._db.command("buildInfo")
            # FerretDB names itself here; its conditional updates need the claim guard.
            self.guard.enabled = "ferretdbVersion" in info
        else:
            self.guard.enabled = self._guarded_updates
        await self.model_versions.ensure_indexes()
        await self.training_jobs.ensure_indexes()
        await self.events.ensure_indexes()

    async def ping(self) -> None:
        await self._db.command("ping")

    async def close(self) -> None:
        self._db.client.close()
