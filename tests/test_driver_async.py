"""The storage over PyMongo's async client (a real server) and over the in-memory mock (Motor's
shape): the calls whose shape differs between the two, cancellation, and closing."""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings

import pytest

from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo.client import aggregate
from tests.conftest import REAL_URI

#: Cancels landed mid-call that the test wants to have seen (each a chance to be swallowed).
CANCELS_WANTED = 60


# PyMongo (4.20) leaves a socket unclosed when a cancel lands while it connects (it closes it
# only on a timeout or an OSError); the collector closes it, with a ResourceWarning. Collected
# here, so that it is this test's, not a later one's (pyproject.toml makes warnings errors).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_a_storage_call_cancelled_midway_ends_cancelled(storage: MongoStorage) -> None:
    """A task cancelled during a storage call ends cancelled, never with the call's result.
    On Python 3.11 PyMongo's async client swallowed some of these cancels (asyncio.wait_for
    returning a result that arrived with the cancel): a background loop cancelled at shutdown
    then kept running, and the server never stopped."""
    landed = 0
    swallowed = 0
    attempt = 0
    while landed < CANCELS_WANTED:
        attempt += 1
        assert attempt < 50 * CANCELS_WANTED, f"only {landed} cancels landed mid-call"
        task = asyncio.create_task(storage.training_jobs.get(f"job-{attempt}"))
        # Cancel after 0..19 turns of the loop: early, mid-send, mid-receive, late.
        for _ in range(attempt % 20):
            await asyncio.sleep(0)
        if not task.cancel():
            continue  # it had already finished: no cancel to deliver
        await asyncio.wait([task])
        landed += 1
        if not task.cancelled():
            swallowed += 1
    gc.collect()
    assert swallowed == 0, f"{swallowed} of {landed} cancelled calls returned normally"


async def test_an_aggregate_runs_on_either_backend(storage: MongoStorage) -> None:
    """``aggregate`` is a coroutine returning the cursor in PyMongo's async client and the
    cursor itself in the mock; the storage's helper gives the rows from both."""
    jobs = storage.database["training_jobs"]
    await jobs.insert_many(
        [{"_id": f"agg-{i}", "status": "RUNNING" if i % 3 else "PENDING"} for i in range(7)]
    )
    pipeline = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    counts = {row["_id"]: row["n"] async for row in await aggregate(jobs, pipeline)}
    assert counts == {"RUNNING": 4, "PENDING": 3}


@pytest.mark.skipif(REAL_URI is None, reason="needs MLTRAIN_TEST_MONGODB_URI")
async def test_closing_the_storage_releases_the_real_client_without_warnings() -> None:
    """PyMongo's async ``close`` is a coroutine: a client whose close was not awaited warns
    (ResourceWarning) when collected, an error in this suite wherever it happens."""
    assert REAL_URI is not None
    store = MongoStorage.connect(REAL_URI, f"mltrain_close_{uuid.uuid4().hex[:10]}")
    await store.ping()  # opens the client: an unopened one has nothing to close
    await store.close()
    del store
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.collect()
