"""Storage over the real server with every command the driver sends recorded, for tests that
check what a storage method asks the database (tests/test_realdb_*.py). Import the fixture
function into a test module to use it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from graphql_api.storage.mongo import MongoStorage
from tests.conftest import REAL_URI


class Recorder(monitoring.CommandListener):
    """The commands sent while ``on``."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.on = False

    def finds(self, collection: str) -> list[dict[str, Any]]:
        return [c for c in self.commands if c.get("find") == collection]

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on:
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture(name="recorded")
async def recorded_fixture() -> AsyncIterator[tuple[MongoStorage, Recorder]]:
    """A storage over a fresh database of the real server, indexes made, and its recorder."""
    recorder = Recorder()
    client: Any = AsyncMongoClient(REAL_URI, tz_aware=True, event_listeners=[recorder])
    name = f"mltrain_recorded_{uuid.uuid4().hex[:10]}"
    storage = MongoStorage(client[name])
    await storage.ensure_indexes()
    try:
        yield storage, recorder
    finally:
        await client.drop_database(name)
        await client.close()
