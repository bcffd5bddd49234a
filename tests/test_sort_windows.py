"""Sorted pages read in windows of the sort key (storage/mongo/windows.py, issue 12 item 4):
exactly the pages of the plain sort, on both backends, for every ordering with ties, filters,
gaps and deep cursors (a property test too), and each page reads a bounded number of rows.

The windowed path is forced on for the in-memory mock as well (``windowed_sorts=True``), so it
is covered wherever the suite runs; a second storage over the same database reads plainly.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import (
    DateRange,
    ModelVersionFilter,
    ModelVersionOrder,
    PageRequest,
    TrainingJobFilter,
    TrainingJobOrder,
)
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage, documents
from graphql_api.storage.mongo.server import ServerInfo, ServerKind, sort_windows_wanted
from graphql_api.storage.mongo.windows import MAX_WINDOWS
from tests.conftest import BACKENDS, REAL_URI

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATUSES = list(TrainingStatus)


@pytest.fixture(params=BACKENDS)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[MongoStorage, MongoStorage]]:
    """(windowed, plain) storages over one fresh database."""
    name = f"mltrain_windows_{uuid.uuid4().hex[:10]}"
    # A long bound: the tests insert thousands of documents on a shared machine.
    windowed = MongoStorage.connect(
        REAL_URI if request.param == "real" else None, name, timeout=60, windowed_sorts=True
    )
    await windowed.ensure_indexes()
    plain = MongoStorage(windowed.database, windowed_sorts=False)
    await plain.ensure_indexes()
    assert windowed.windows.enabled and not plain.windows.enabled
    try:
        yield windowed, plain
    finally:
        if request.param == "real":
            await windowed.database.client.drop_database(name)
        await windowed.close()


def job_doc(n: int, created: datetime, status: TrainingStatus, model: str) -> dict[str, Any]:
    return documents.TRAINING_JOBS.to_doc(
        TrainingJob(
            job_id=f"job-{n:05d}",
            model_id=model,
            dataset_id=f"d{n % 3}",
            status=status,
            created_date=created,
        )
    )


def version_doc(n: int, created: datetime, version: str) -> dict[str, Any]:
    return documents.MODEL_VERSIONS.to_doc(
        ModelVersion(
            model_id=f"mv-{n:05d}",
            model_name=f"name-{n % 9}",
            version=version,
            model_type=ModelType.REGRESSION,
            status=ModelStatus.DEVELOPMENT if n % 4 else ModelStatus.TESTING,
            created_date=created,
        )
    )


def lumpy_dates(count: int) -> list[datetime]:
    """Clusters of equal dates (ties), dense runs a millisecond apart, and gaps from seconds
    to years: what forces windows to widen, skip, and split nothing."""
    dates = []
    for n in range(count):
        cluster = n // 40
        dates.append(
            T0
            + timedelta(days=400 * (cluster % 3) - 300, hours=cluster * 7)
            + timedelta(milliseconds=(n % 40) // 5 if cluster % 2 else n % 40)
        )
    dates.append(datetime(1960, 5, 1, tzinfo=UTC))  # before the epoch
    dates.append(datetime(2100, 1, 1, tzinfo=UTC))  # far in the future
    return dates


async def walk(storage: MongoStorage, kind: str, where: Any, order: Any, first: int) -> list[Any]:
    """Every page, following the end cursor: (ids, cursors, has_next) per page."""
    store: Any = storage.training_jobs if kind == "jobs" else storage.model_versions
    pages = []
    after = None
    for _ in range(1000):
        page = await store.find(where, order, PageRequest(first=first, after=after))
        ids = [getattr(item, "job_id", None) or item.model_id for item in page.items]
        pages.append((ids, page.cursors, page.has_next_page))
        if not page.has_next_page:
            return pages
        after = page.end_cursor
    raise AssertionError("the walk did not end")


async def seed(storage: MongoStorage, count: int = 300) -> list[list[dict[str, Any]]]:
    """Jobs and versions with lumpy dates; the documents inserted, [jobs, versions]."""
    dates = lumpy_dates(count)
    jobs = [
        job_doc(n, created, STATUSES[n % 7 % len(STATUSES)], f"m{n % 5}")
        for n, created in enumerate(dates)
    ]
    await storage.database["training_jobs"].insert_many([dict(d) for d in jobs])
    # Versions: each version string under nine names (ties on version_sort_key), pre-releases.
    versions = [
        f"{n // 9 % 3}.{n // 27}.0" + ("-rc.1" if n // 9 % 5 == 0 else "")
        for n in range(len(dates))
    ]
    version_docs = [
        version_doc(n, created, version)
        for n, (created, version) in enumerate(zip(dates, versions, strict=True))
    ]
    await storage.database["model_versions"].insert_many([dict(d) for d in version_docs])
    return [jobs, version_docs]


WINDOW = DateRange(since=T0 - timedelta(days=10), until=T0 + timedelta(days=200))
JOB_FILTERS: list[tuple[TrainingJobFilter, Callable[[dict[str, Any]], bool]]] = [
    (TrainingJobFilter(), lambda d: True),
    (TrainingJobFilter(statuses=(TrainingStatus.FAILED,)), lambda d: d["status"] == "FAILED"),
    (
        TrainingJobFilter(
            model_ids=("m2",), statuses=(TrainingStatus.COMPLETED, TrainingStatus.PENDING)
        ),
        lambda d: d["model_id"] == "m2" and d["status"] in ("COMPLETED", "PENDING"),
    ),
    (
        TrainingJobFilter(created=WINDOW),
        lambda d: WINDOW.since <= d["created_date"] <= WINDOW.until,
    ),
    (TrainingJobFilter(dataset_ids=("nothing",)), lambda d: False),
]
VERSION_FILTERS: list[tuple[ModelVersionFilter, Callable[[dict[str, Any]], bool]]] = [
    (ModelVersionFilter(), lambda d: True),
    (
        ModelVersionFilter(model_names=("name-3", "name-4")),
        lambda d: d["model_name"] in ("name-3", "name-4"),
    ),
    (ModelVersionFilter(statuses=(ModelStatus.TESTING,)), lambda d: d["status"] == "testing"),
]


def expected_ids(docs: list[dict[str, Any]], keep: Any, key: str, descending: bool) -> list[str]:
    chosen = [d for d in docs if keep(d)]
    chosen.sort(key=lambda d: (d[key], d["_id"]), reverse=descending)
    return [d["_id"] for d in chosen]


async def test_windowed_pages_are_the_plain_pages_for_every_ordering_filter_and_page_size(
    pair: tuple[MongoStorage, MongoStorage],
) -> None:
    windowed, plain = pair
    jobs, versions = await seed(windowed, 160)
    compared = 0
    for (where, keep), order, first in itertools.product(JOB_FILTERS, TrainingJobOrder, (4, 50)):
        expected = await walk(plain, "jobs", where, order, first)
        assert await walk(windowed, "jobs", where, order, first) == expected, (where, order, first)
        # And both are the true order (on DocumentDB a date filter with a cursor lost ties).
        descending = order is TrainingJobOrder.CREATED_DATE_DESC
        walked = [i for ids, _, _ in expected for i in ids]
        assert walked == expected_ids(jobs, keep, "created_date", descending), (where, order)
        compared += len(walked)
    for (version_where, keep), version_order, first in itertools.product(
        VERSION_FILTERS, ModelVersionOrder, (3, 50)
    ):
        expected = await walk(plain, "versions", version_where, version_order, first)
        got = await walk(windowed, "versions", version_where, version_order, first)
        assert got == expected, (version_where, version_order)
        key = "version_sort_key" if "VERSION" in version_order.value else "created_date"
        walked = [i for ids, _, _ in expected for i in ids]
        assert walked == expected_ids(versions, keep, key, version_order.value.endswith("DESC"))
        compared += len(walked)
    assert compared > 2000


async def test_a_deep_cursor_in_a_fresh_process_reads_the_same_page(
    pair: tuple[MongoStorage, MongoStorage],
) -> None:
    """A cursor from another instance (no hints learned here) starts at its own value."""
    windowed, plain = pair
    await seed(windowed)
    for order in TrainingJobOrder:
        pages = await walk(plain, "jobs", TrainingJobFilter(), order, 13)
        for _ids, cursors, _ in pages[::4]:
            fresh = MongoStorage(windowed.database, windowed_sorts=True)
            await fresh.ensure_indexes()
            request = PageRequest(first=20, after=cursors[-1])
            got = await fresh.training_jobs.find(TrainingJobFilter(), order, request)
            want = await plain.training_jobs.find(TrainingJobFilter(), order, request)
            assert [j.job_id for j in got.items] == [j.job_id for j in want.items]
            assert (got.cursors, got.has_next_page) == (want.cursors, want.has_next_page)


async def test_a_page_reads_rows_near_it_not_the_whole_collection(
    pair: tuple[MongoStorage, MongoStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work counted as the rows each read's filter matches (what DocumentDB reads: the index
    serves the window's range, then every matching row is sorted). Plain: every row per page."""
    windowed, _ = pair
    jobs = 3000
    await windowed.database["training_jobs"].insert_many(
        [
            job_doc(n, T0 + timedelta(minutes=3 * n, seconds=n % 17), STATUSES[n % 5], f"m{n % 5}")
            for n in range(jobs)
        ]
    )
    store = windowed.training_jobs
    reads: list[dict[str, Any]] = []
    read_sorted = store._read_sorted

    async def recording(
        query: dict[str, Any], sort: Any, limit: int, hint: str | None = None
    ) -> list[dict[str, Any]]:
        reads.append(query)
        return await read_sorted(query, sort, limit, hint)

    monkeypatch.setattr(store, "_read_sorted", recording)

    async def rows_read(
        where: TrainingJobFilter, order: TrainingJobOrder, after: str | None
    ) -> int:
        reads.clear()
        page = await store.find(where, order, PageRequest(first=50, after=after))
        assert len(page.items) == 50
        assert len(reads) <= MAX_WINDOWS + 1
        matched = [await windowed.database["training_jobs"].count_documents(q) for q in reads]
        return sum(matched)

    failed = TrainingJobFilter(statuses=(TrainingStatus.FAILED,))
    for order in TrainingJobOrder:
        await rows_read(TrainingJobFilter(), order, None)  # learns the list's edge and density
        first = await rows_read(TrainingJobFilter(), order, None)
        cursor = None
        for _ in range(20):  # page 21 through real cursors
            page = await store.find(TrainingJobFilter(), order, PageRequest(first=50, after=cursor))
            cursor = page.end_cursor
        deep = await rows_read(TrainingJobFilter(), order, cursor)
        filtered = await rows_read(failed, order, None)
        filtered_deep = await rows_read(failed, order, cursor)
        assert max(first, deep, filtered, filtered_deep) <= 400, (order, first, deep, filtered)


async def test_the_api_answers_the_same_pages_windowed_and_plain(
    pair: tuple[MongoStorage, MongoStorage],
) -> None:
    """Through GraphQL: trainingJobs pages of an app over a windowed storage."""
    import httpx
    from asgi_lifespan import LifespanManager

    from graphql_api.app import create_app
    from tests.conftest import GraphQLClient

    windowed, plain = pair
    await seed(windowed, 120)
    query = """query($after: String, $order: TrainingJobOrder) {
      trainingJobs(first: 9, after: $after, orderBy: $order,
                   filter: {statuses: [PENDING, FAILED]}) {
        edges { cursor node { jobId } } pageInfo { hasNextPage endCursor } } }"""
    answers = []
    for storage in (windowed, plain):
        app = create_app(Settings(allowed_hosts=["testserver"]), storage=storage)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                gql = GraphQLClient(c)
                pages = []
                for order in ("CREATED_DATE_DESC", "CREATED_DATE_ASC"):
                    after = None
                    while True:
                        data = (await gql.data(query, after=after, order=order))["trainingJobs"]
                        pages.append(data)
                        if not data["pageInfo"]["hasNextPage"]:
                            break
                        after = data["pageInfo"]["endCursor"]
                answers.append(pages)
    assert answers[0] == answers[1]
    assert len(answers[0]) > 4


def test_windowing_is_on_only_where_the_server_sorts_without_an_index() -> None:
    assert sort_windows_wanted(ServerInfo(ServerKind.FERRETDB_V2, "v2.7.0"), None)
    assert not sort_windows_wanted(ServerInfo(ServerKind.MONGODB, "8.0"), None)
    assert not sort_windows_wanted(ServerInfo(ServerKind.FERRETDB_V1, "v1.24"), None)
    assert sort_windows_wanted(ServerInfo(ServerKind.MONGODB, "8.0"), True)
    assert not sort_windows_wanted(ServerInfo(ServerKind.FERRETDB_V2, "v2.7.0"), False)
    assert Settings(windowed_sorts="on").sort_windows is True
    assert Settings().sort_windows is None


# ---- property: any data, any filter, any page size: the windowed walk is the plain walk

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Offsets from T0 in milliseconds: few values (ties), near and very far apart (gaps).
offsets = st.one_of(
    st.sampled_from([0, 1, 2, 999, 1000]),
    st.integers(-(10**12), 10**12),
    st.integers(-5000, 5000),
)


@EXAMPLES
@given(
    rows=st.lists(st.tuples(offsets, st.sampled_from(STATUSES[:3])), min_size=0, max_size=60),
    first=st.integers(1, 12),
    status=st.none() | st.sampled_from(STATUSES[:3]),
    descending=st.booleans(),
    cold=st.booleans(),
)
async def test_property_windowed_walks_equal_plain_walks(
    pair: tuple[MongoStorage, MongoStorage],
    rows: list[tuple[int, TrainingStatus]],
    first: int,
    status: TrainingStatus | None,
    descending: bool,
    cold: bool,
) -> None:
    windowed, plain = pair
    collection = windowed.database["training_jobs"]
    await collection.delete_many({})
    if rows:
        await collection.insert_many(
            [
                job_doc(n, T0 + timedelta(milliseconds=offset), row_status, f"m{n % 2}")
                for n, (offset, row_status) in enumerate(rows)
            ]
        )
    if cold:  # a process with no hints, or one that learned them on other data
        windowed = MongoStorage(windowed.database, windowed_sorts=True)
        await windowed.ensure_indexes()
    where = TrainingJobFilter(statuses=None if status is None else (status,))
    order = TrainingJobOrder.CREATED_DATE_DESC if descending else TrainingJobOrder.CREATED_DATE_ASC
    assert await walk(windowed, "jobs", where, order, first) == await walk(
        plain, "jobs", where, order, first
    )


async def test_a_date_filtered_page_after_a_cursor_keeps_the_rows_tied_with_it(
    pair: tuple[MongoStorage, MongoStorage],
) -> None:
    """DocumentDB answered ``{$and: [{created_date: range}, {$or: [{created_date: {$lt: v}},
    {created_date: v, _id: {$lt: id}}]}]}`` with the first branch's rows only: a page after a
    cursor, filtered by created date, skipped the jobs created in the cursor's millisecond."""
    windowed, plain = pair
    tied = T0 + timedelta(days=3, milliseconds=7)
    docs = [
        job_doc(n, tied if n % 2 else tied - timedelta(seconds=n), STATUSES[0], "m")
        for n in range(12)
    ]
    await windowed.database["training_jobs"].insert_many(docs)
    for days in (1, 400):
        where = TrainingJobFilter(created=DateRange(since=tied - timedelta(days=days)))
        for order in TrainingJobOrder:
            want = expected_ids(docs, lambda d: True, "created_date", order.value.endswith("DESC"))
            for storage in (plain, windowed):
                for first in (1, 2, 5):
                    pages = await walk(storage, "jobs", where, order, first)
                    assert [i for ids, _, _ in pages for i in ids] == want, (order, first)


async def test_round_trips_per_page_stay_few_short_lists_one(
    pair: tuple[MongoStorage, MongoStorage],
) -> None:
    """A list shorter than a page is one round trip; walking a long list, after the first
    walk taught the process its edges, no page (the last one included) takes more than a
    few windows."""
    windowed, _ = pair
    store = windowed.training_jobs
    await windowed.database["training_jobs"].insert_many(
        [job_doc(n, T0 + timedelta(minutes=n), STATUSES[n % 5], "m") for n in range(5)]
    )
    for order in TrainingJobOrder:
        for _ in range(3):
            windowed.stats.round_trips = 0
            page = await store.find(TrainingJobFilter(), order, PageRequest(first=10))
            assert len(page.items) == 5
            assert windowed.stats.round_trips == 1
    await windowed.database["training_jobs"].insert_many(
        [
            job_doc(n, T0 + timedelta(minutes=3 * n, seconds=n % 11), STATUSES[n % 5], "m")
            for n in range(5, 1200)
        ]
    )
    for order in TrainingJobOrder:
        for walk_number in range(2):
            cursor, trips = None, []
            while True:
                windowed.stats.round_trips = 0
                found = await store.find(
                    TrainingJobFilter(), order, PageRequest(first=50, after=cursor)
                )
                trips.append(windowed.stats.round_trips)
                if not found.has_next_page:
                    break
                cursor = found.end_cursor
            assert len(trips) == 24
            if walk_number:
                assert max(trips) <= 4, trips
