"""The head of the change log (its highest sequence number) is found without reading the log.

A sort of the whole log by ``_id`` read every event on DocumentDB (no ordered index scan); the
head is now looked for in a window below the events counter, widened until it holds an event.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import monitoring

from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo.events import HEAD_WINDOW
from graphql_api.storage.mongo.query_shapes import filter_fields
from graphql_api.storage.mongo.server import ServerKind
from tests.conftest import REAL_URI


async def put_events(storage: MongoStorage, seqs: list[int], counter: int | None) -> None:
    """Log entries with these numbers (as appends and seals leave them) and the counter."""
    docs = [{"_id": s, "sealed": True, "sealed_at": datetime.now(UTC)} for s in seqs]
    if docs:
        await storage._db["events"].insert_many(docs)
    if counter is not None:
        await storage._db["counters"].insert_one({"_id": "events", "seq": counter})


@pytest.mark.parametrize(
    ("seqs", "counter", "head"),
    [
        ([], None, 0),  # a new database
        ([1, 2, 3], 3, 3),
        (list(range(1, 300)), 299, 299),
        (list(range(1, 300)), 310, 299),  # appends in flight: numbers taken, not yet stored
        (list(range(1, 300)), 250, 299),  # a counter that lags (FerretDB v1's lost $inc)
        ([5, 7], 50_000, 7),  # a long run of holes below the counter: the window widens
        ([40_000], None, 40_000),  # no counter at all
    ],
)
async def test_head_is_the_highest_stored_number(
    storage: MongoStorage, seqs: list[int], counter: int | None, head: int
) -> None:
    await put_events(storage, seqs, counter)
    assert await storage.events.head() == head


class FindRecorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.finds: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command["find"] == "events":
            self.finds.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def recorded_storage() -> AsyncIterator[tuple[MongoStorage, FindRecorder]]:
    recorder = FindRecorder()
    client: Any = AsyncIOMotorClient(REAL_URI, tz_aware=True, event_listeners=[recorder])
    name = f"mltrain_head_{uuid.uuid4().hex[:10]}"
    storage = MongoStorage(client[name])
    await storage.ensure_indexes()
    try:
        yield storage, recorder
    finally:
        await client.drop_database(name)
        client.close()


@pytest.mark.skipif(not REAL_URI, reason="needs MLTRAIN_TEST_MONGODB_URI (a real server)")
async def test_head_of_a_long_log_reads_a_window_not_the_log(
    recorded_storage: tuple[MongoStorage, FindRecorder],
) -> None:
    storage, recorder = recorded_storage
    await put_events(storage, list(range(1, 5_001)), 5_000)
    assert await storage.events.head() == 5_000
    # One read of the log, bounded below by the window under the counter.
    assert len(recorder.finds) == 1
    assert filter_fields(recorder.finds[0]["filter"]) == {"_id"}
    assert recorder.finds[0]["filter"]["_id"] == {"$gt": 5_000 - HEAD_WINDOW}
    reply = await storage._db.command(
        "explain",
        {"find": "events", "filter": recorder.finds[0]["filter"], "sort": {"_id": -1}, "limit": 1},
        verbosity="queryPlanner",
    )
    if storage.server.kind is ServerKind.FERRETDB_V2:  # PostgreSQL's plan
        assert "object_id" in str(reply["queryPlanner"]["Plan"])  # an _id range, not the log
