"""The head of the change log (its highest sequence number) is found without reading the log.

A sort of the whole log by ``_id`` read every event on DocumentDB (no ordered index scan); the
head is now looked for in a window below the events counter, widened until it holds an event.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo.events import HEAD_WINDOW
from graphql_api.storage.mongo.query_shapes import filter_fields
from graphql_api.storage.mongo.server import ServerKind
from tests.conftest import REAL_URI
from tests.recorded_commands import Recorder, recorded_fixture  # noqa: F401 (fixture)


async def put_events(storage: MongoStorage, seqs: list[int], counter: int | None) -> None:
    """Log entries with these numbers (as appends and seals leave them) and the counter."""
    docs = [{"_id": s, "sealed": True, "sealed_at": datetime.now(UTC)} for s in seqs]
    if docs:
        await storage.database["events"].insert_many(docs)
    counters = storage.database["counters"]
    if counter is None:  # a database from before the counter was made at start-up
        await counters.delete_one({"_id": "events"})
    else:
        await counters.replace_one({"_id": "events"}, {"seq": counter}, upsert=True)


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


@pytest.mark.skipif(not REAL_URI, reason="needs MLTRAIN_TEST_MONGODB_URI (a real server)")
async def test_head_of_a_long_log_reads_a_window_not_the_log(
    recorded: tuple[MongoStorage, Recorder],
) -> None:
    storage, recorder = recorded
    recorder.on = True
    await put_events(storage, list(range(1, 5_001)), 5_000)
    assert await storage.events.head() == 5_000
    # One read of the log, bounded below by the window under the counter.
    (find,) = recorder.finds("events")
    assert filter_fields(find["filter"]) == {"_id"}
    assert find["filter"]["_id"] == {"$gt": 5_000 - HEAD_WINDOW}
    reply = await storage.database.command(
        "explain",
        {"find": "events", "filter": find["filter"], "sort": {"_id": -1}, "limit": 1},
        verbosity="queryPlanner",
    )
    if storage.server.kind is ServerKind.FERRETDB_V2:  # PostgreSQL's plan
        assert "object_id" in str(reply["queryPlanner"]["Plan"])  # an _id range, not the log
