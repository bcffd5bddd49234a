"""A filtered sorted page on DocumentDB reads the rows of its window that match the filter, not
every index entry of the filter's value (issue 12 item 4).

DocumentDB indexes each field of a compound index separately unless the index is created
ordered (``enableOrderedIndex``, storage/mongo/server.py): then ``status = FAILED AND
created_date >= x`` read all FAILED entries of ``status_created_date`` (12,000 at 100,000
jobs) to find the few in the window. These tests check, with ``explain`` on the real server,
that every window read of a filtered list is served by an ordered index holding the filter's
field and the sort key (one range over both), that the pages stay the plain sort's, and that a
database whose indexes an earlier release made unordered gets them rebuilt at start-up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.queries import PageRequest, TrainingJobFilter, TrainingJobOrder
from graphql_api.storage.mongo import MongoStorage, documents
from graphql_api.storage.mongo.query_shapes import filter_fields
from graphql_api.storage.mongo.server import ServerKind, identify
from tests.conftest import REAL_URI, drop_test_database
from tests.recorded_commands import Recorder, recorded_fixture  # noqa: F401 (fixture)

real_only = pytest.mark.skipif(not REAL_URI, reason="needs MLTRAIN_TEST_MONGODB_URI")
#: Enough jobs that PostgreSQL's planner uses indexes (a handful of rows is cheaper to scan).
JOBS = 3000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: The list filters whose compound index also bounds a window of created_date.
WINDOW_FILTER_FIELDS = {"status", "model_id", "dataset_id"}
INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


def job(n: int) -> dict[str, Any]:
    status = TrainingStatus.FAILED if n % 8 == 0 else TrainingStatus.COMPLETED
    if n % 23 == 0:
        status = TrainingStatus.CANCELLED
    return documents.TRAINING_JOBS.to_doc(
        TrainingJob(
            job_id=f"job-{n:05d}",
            model_id=f"model-{n % 41:02d}",
            dataset_id=f"data-{n % 7}",
            status=status,
            # Ties in some milliseconds: the windows must keep rows of one key together.
            created_date=T0 + timedelta(minutes=n - n % 3),
        )
    )


def filters() -> list[TrainingJobFilter]:
    return [
        TrainingJobFilter(statuses=(TrainingStatus.FAILED,)),  # 12%
        TrainingJobFilter(statuses=(TrainingStatus.FAILED, TrainingStatus.CANCELLED)),
        TrainingJobFilter(statuses=(TrainingStatus.CANCELLED,)),  # 4%: a rare status
        TrainingJobFilter(model_ids=("model-03",)),  # 2.4%: one model's jobs
        TrainingJobFilter(dataset_ids=("data-2",)),
        TrainingJobFilter(model_ids=("model-03",), statuses=(TrainingStatus.FAILED,)),
        TrainingJobFilter(model_ids=("model-03", "model-17"), dataset_ids=("data-2",)),
    ]


def index_scans(plan: dict[str, Any]) -> list[str]:
    """The indexes a plan scans."""
    found = [plan["Index Name"]] if plan.get("Node Type") in INDEX_SCANS else []
    for child in plan.get("Plans", []):
        found += index_scans(child)
    return found


async def explain(storage: MongoStorage, command: dict[str, Any]) -> dict[str, Any]:
    body = {k: command[k] for k in ("find", "filter", "sort", "limit", "hint") if k in command}
    reply: dict[str, Any] = await storage.database.command(
        "explain", body, verbosity="queryPlanner"
    )
    plan: dict[str, Any] = reply["queryPlanner"]["Plan"]
    return plan


async def pages(
    storage: MongoStorage, where: TrainingJobFilter, order: TrainingJobOrder
) -> list[str]:
    """Every job of the list, by pages of 20 (the first page and each after its cursor)."""
    ids: list[str] = []
    after = None
    while True:
        page = await storage.training_jobs.find(where, order, PageRequest(first=20, after=after))
        ids += [j.job_id for j in page.items]
        if not page.has_next_page:
            return ids
        after = page.end_cursor


@real_only
async def test_every_window_of_a_filtered_list_is_one_range_of_an_ordered_index(
    recorded: tuple[MongoStorage, Recorder],
) -> None:
    storage, recorder = recorded
    if storage.server.kind is not ServerKind.FERRETDB_V2:
        pytest.skip(f"DocumentDB's plans; this is {storage.server}")
    assert storage.windows.enabled
    await storage.database["training_jobs"].insert_many([job(n) for n in range(JOBS)])
    plain = MongoStorage(storage.database, windowed_sorts=False)
    await plain.identify_server()
    everything = [f"job-{n:05d}" for n in range(JOBS)]

    recorder.on = True
    for order in TrainingJobOrder:
        # The unfiltered list first (as the dashboard does): the filtered lists start from
        # its hints, so even their first pages are read in windows.
        assert len(await pages(storage, TrainingJobFilter(), order)) == JOBS
        for where in filters():
            windowed = await pages(storage, where, order)
            assert windowed == await pages(plain, where, order)
            assert windowed and set(windowed) < set(everything)
    recorder.on = False

    ordered = {
        name: [field for field, _ in info["key"]]
        for name, info in (await storage.database["training_jobs"].index_information()).items()
        if info.get("enableOrderedIndex")
    }
    checked = 0
    for command in recorder.finds("training_jobs"):
        fields = filter_fields(command.get("filter", {}))
        filtered_on = fields & WINDOW_FILTER_FIELDS
        if "created_date" not in fields or not filtered_on:
            continue  # not a window of a filtered list
        plan = await explain(storage, command)
        used = index_scans(plan)
        assert used, f"no index serves {command['filter']}: {plan}"
        for name in used:
            key = ordered.get(name)
            assert key is not None and "created_date" in key and filtered_on & set(key), (
                f"a window of a list filtered on {sorted(filtered_on)} is read through {name!r}, "
                f"not an ordered index of the filter's field and created_date "
                f"(ordered: {ordered}): {command['filter']}"
            )
        checked += 1
    assert checked >= 2 * len(filters()), "too few windowed reads to check"


async def old_release_indexes(collection: Any) -> None:
    """The three compound indexes as a release before ordered indexes made them."""
    for field in sorted(WINDOW_FILTER_FIELDS):
        await collection.create_index(
            [(field, 1), ("created_date", -1)], name=f"{field}_created_date"
        )


@pytest.fixture
async def old_database() -> AsyncIterator[MongoStorage]:
    name = f"mltrain_old_indexes_{uuid.uuid4().hex[:10]}"
    storage = MongoStorage.connect(REAL_URI, name, timeout=60)
    try:
        await storage.database["training_jobs"].insert_many([job(n) for n in range(50)])
        await old_release_indexes(storage.database["training_jobs"])
        yield storage
    finally:
        await drop_test_database(storage, name)
        await storage.close()


@real_only
async def test_start_up_rebuilds_the_unordered_indexes_of_an_earlier_release_ordered(
    old_database: MongoStorage,
) -> None:
    await old_database.identify_server()
    if old_database.server.kind is not ServerKind.FERRETDB_V2:
        pytest.skip(f"DocumentDB's index option; this is {old_database.server}")
    # Two instances starting together over the old database: both rebuild, neither fails.
    other = MongoStorage(old_database.database, windowed_sorts=True)
    await asyncio.gather(old_database.ensure_indexes(), other.ensure_indexes())
    await old_database.ensure_indexes()  # and a later start finds them as it wants them
    indexes = await old_database.database["training_jobs"].index_information()
    for field in WINDOW_FILTER_FIELDS:
        assert indexes[f"{field}_created_date"].get("enableOrderedIndex"), indexes
    where = TrainingJobFilter(statuses=(TrainingStatus.FAILED,))
    found = await old_database.training_jobs.find(
        where, TrainingJobOrder.CREATED_DATE_DESC, PageRequest(first=100)
    )
    assert [j.job_id for j in found.items] == [
        f"job-{n:05d}"
        for n in sorted(range(0, 50, 8), key=lambda n: (n - n % 3, n), reverse=True)
        if n % 23
    ]


def test_only_documentdb_gets_ordered_indexes() -> None:
    """MongoDB's compound indexes are ordered anyway and it refuses the option."""
    assert identify({"ferretdb": {"version": "v2.7.0"}}).needs_ordered_indexes
    assert not identify({"ferretdbVersion": "1.24.0"}).needs_ordered_indexes
    assert not identify({"version": "7.0.12"}).needs_ordered_indexes


async def test_the_in_memory_database_gets_plain_indexes(storage: MongoStorage) -> None:
    indexes = await storage.database["training_jobs"].index_information()
    if storage.server.needs_ordered_indexes:
        pytest.skip("the real server is DocumentDB")
    for field in WINDOW_FILTER_FIELDS:
        assert "enableOrderedIndex" not in indexes[f"{field}_created_date"]
