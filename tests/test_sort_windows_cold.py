"""A freshly started process learns where a sorted list's rows are with one plain read, even
when many first pages arrive at once (storage/mongo/windows.py).

On DocumentDB a plain sorted read sorts every matching row (about 280 ms of database CPU at
100,000 jobs). A new instance taking dashboard traffic used to send that read once per
concurrent first page: 16 at once went past the 2.5 s operation bound and were answered
DATABASE_UNAVAILABLE (bench/README.md). Now the first page learns, the others wait for it and
read in windows; if the learning read fails, the next waiting page learns instead.
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
from tests.conftest import BACKENDS, REAL_URI

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NEWEST = TrainingJobOrder.CREATED_DATE_DESC
JOBS = 600
STATUSES = [TrainingStatus.COMPLETED, TrainingStatus.FAILED, TrainingStatus.PENDING]


@pytest.fixture(params=BACKENDS)
async def seeded(request: pytest.FixtureRequest) -> AsyncIterator[MongoStorage]:
    """A windowed storage over a fresh database holding ``JOBS`` jobs; it never read them."""
    name = f"mltrain_cold_{uuid.uuid4().hex[:10]}"
    storage = MongoStorage.connect(
        REAL_URI if request.param == "real" else None, name, timeout=60, windowed_sorts=True
    )
    await storage.ensure_indexes()
    await storage.database["training_jobs"].insert_many(
        [
            documents.TRAINING_JOBS.to_doc(
                TrainingJob(
                    job_id=f"job-{n:05d}",
                    model_id=f"m{n % 4}",
                    dataset_id="d",
                    status=STATUSES[n % len(STATUSES)],
                    created_date=T0 + timedelta(minutes=n),
                )
            )
            for n in range(JOBS)
        ]
    )
    try:
        yield storage
    finally:
        if request.param == "real":
            await storage.database.client.drop_database(name)
        await storage.close()


def record_reads(
    storage: MongoStorage, monkeypatch: pytest.MonkeyPatch, fail_first: bool = False
) -> list[dict[str, Any]]:
    """Every sorted read's query, in order; with ``fail_first`` the first read fails."""
    store = storage.training_jobs
    read_sorted = store._read_sorted
    queries: list[dict[str, Any]] = []

    async def recording(
        query: dict[str, Any], sort: Any, limit: int, hint: str | None = None
    ) -> list[dict[str, Any]]:
        queries.append(query)
        # A read waits for the database: the other pages run meanwhile (the mock answers
        # without ever yielding, which would serialise them).
        await asyncio.sleep(0)
        if fail_first and len(queries) == 1:
            raise ConnectionError("the database went away")
        return await read_sorted(query, sort, limit, hint)

    monkeypatch.setattr(store, "_read_sorted", recording)
    return queries


def plain(query: dict[str, Any]) -> bool:
    """A read with no window on the sort key: it sorts every row the filter matches."""
    return "created_date" not in str(query)


def newest(count: int, status: TrainingStatus | None = None) -> list[str]:
    ids = [
        f"job-{n:05d}"
        for n in reversed(range(JOBS))
        if status is None or STATUSES[n % len(STATUSES)] == status
    ]
    return ids[:count]


@pytest.mark.parametrize("concurrent", [2, 16])
async def test_concurrent_first_pages_of_a_fresh_process_sort_the_list_once(
    seeded: MongoStorage, monkeypatch: pytest.MonkeyPatch, concurrent: int
) -> None:
    queries = record_reads(seeded, monkeypatch)
    pages = await asyncio.gather(
        *(
            seeded.training_jobs.find(TrainingJobFilter(), NEWEST, PageRequest(first=50))
            for _ in range(concurrent)
        )
    )
    assert [[job.job_id for job in page.items] for page in pages] == [newest(50)] * concurrent
    assert sum(map(plain, queries)) == 1, queries


async def test_first_pages_of_lists_filtered_by_other_values_wait_for_the_same_learning(
    seeded: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lists filtered on the same fields (one status or another) share what is learned."""
    queries = record_reads(seeded, monkeypatch)
    statuses = [STATUSES[n % len(STATUSES)] for n in range(9)]
    pages = await asyncio.gather(
        *(
            seeded.training_jobs.find(
                TrainingJobFilter(statuses=(status,)), NEWEST, PageRequest(first=20)
            )
            for status in statuses
        )
    )
    for status, page in zip(statuses, pages, strict=True):
        assert [job.job_id for job in page.items] == newest(20, status)
    assert sum(map(plain, queries)) == 1, queries


async def test_when_the_learning_read_fails_the_waiting_pages_still_answer(
    seeded: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = record_reads(seeded, monkeypatch, fail_first=True)
    results = await asyncio.gather(
        *(
            seeded.training_jobs.find(TrainingJobFilter(), NEWEST, PageRequest(first=50))
            for _ in range(6)
        ),
        return_exceptions=True,
    )
    failed = [result for result in results if isinstance(result, BaseException)]
    assert len(failed) == 1  # only the page whose read failed
    answered = [result for result in results if not isinstance(result, BaseException)]
    assert [[job.job_id for job in page.items] for page in answered] == [newest(50)] * 5
    # The failed read, then one more learner: not one plain read per waiting page.
    assert sum(map(plain, queries)) == 2, queries
