"""A server that dies in the middle of storing points (issue 13 item 6): no bucket summary is
ever wrong, and the job's counters and latest values heal with the next write once the dead
writer's lease expires; retrying the lost call counts nothing twice. Both backends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphql_api.domain import series
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo import metric_series as mongo_series
from tests.conftest import GraphQLClient
from tests.operations import JOB
from tests.series_helpers import REPORT_POINTS, points, read, report, running_job


class DiesBeforeCommitting:
    """The job documents' collection of a server that dies right after writing the buckets:
    the commit never reaches the database, and nothing releases the lease."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def find_one_and_update(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "metric_lease.seq" in query:
            raise ConnectionResetError("the server process died")
        return await self._inner.find_one_and_update(query, *args, **kwargs)

    async def update_one(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "metric_lease.seq" in query:
            raise ConnectionResetError("the server process died")
        return await self._inner.update_one(query, *args, **kwargs)


async def test_a_write_that_dies_before_committing_heals_with_the_next_one(
    gql: GraphQLClient, storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mongo_series, "LEASE_SECONDS", 0.5)
    job_id = await running_job(gql)
    await report(gql, job_id, points("loss", range(100)))
    jobs = storage.metric_series._jobs
    alive = jobs._c
    monkeypatch.setattr(jobs, "_c", DiesBeforeCommitting(alive))
    lost = points("loss", range(50, 150), value=lambda s: -s) + points("acc", range(10))
    body = await gql.execute(REPORT_POINTS, id=job_id, points=lost)
    assert body["errors"][0]["message"] == "Unexpected error."
    monkeypatch.setattr(jobs, "_c", alive)

    # The buckets were written whole: every summary matches its points.
    (loss,) = (await read(gql, job_id, keys=["loss"], max=10_000))["metricSeries"]
    assert loss["totalPoints"] == 150
    values = [p["value"] for p in loss["points"]]
    assert (loss["min"], loss["max"], loss["last"]) == (min(values), max(values), -149)
    # The job's latest values lag until the next write.
    assert (await gql.data(JOB, id=job_id))["trainingJob"]["metrics"] == {"loss": 9.9}

    # The next write waits out the dead writer's lease, recounts, and commits.
    healed = await report(gql, job_id, points("loss", [150], value=0.5))
    assert healed["metrics"] == {"loss": 0.5, "acc": 0.9}
    # The retried call replaces its points: the count is exact, as the limit shows.
    assert (await report(gql, job_id, lost))["__typename"] == "TrainingJob"
    stored = 151 + 10
    monkeypatch.setattr(series, "MAX_POINTS_PER_JOB", stored + 1)
    assert (await report(gql, job_id, points("acc", [10])))["__typename"] == "TrainingJob"
    refused = await report(gql, job_id, points("acc", [11]))
    assert refused["rule"] == "max_items" and f"stores {stored + 1:,}" in refused["message"]
    totals = {s["key"]: s["totalPoints"] for s in (await read(gql, job_id))["metricSeries"]}
    assert totals == {"acc": 11, "loss": 151}


async def test_concurrent_calls_for_one_job_are_serialised_and_all_land(
    gql: GraphQLClient,
) -> None:
    job_id = await running_job(gql)
    calls = [points("loss", range(n * 100, n * 100 + 100)) for n in range(8)]
    results = await asyncio.gather(*(report(gql, job_id, c) for c in calls))
    assert [r["__typename"] for r in results] == ["TrainingJob"] * 8
    (loss,) = (await read(gql, job_id, max=10_000))["metricSeries"]
    assert loss["totalPoints"] == 800
    assert (await gql.data(JOB, id=job_id))["trainingJob"]["metrics"] == {"loss": 79.9}


class DiesBeforeTheSummaryCopies:
    """The summary copies' collection of a server that dies right after writing the buckets."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def replace_one(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionResetError("the server process died")

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionResetError("the server process died")


async def test_summary_copies_lost_in_a_crash_show_the_earlier_state_until_healed(
    gql: GraphQLClient, storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mongo_series, "LEASE_SECONDS", 0.5)
    job_id = await running_job(gql)
    await report(gql, job_id, points("loss", range(200)))
    copies = storage.metric_series._summaries
    alive = copies._c
    monkeypatch.setattr(copies, "_c", DiesBeforeTheSummaryCopies(alive))
    monkeypatch.setattr(
        storage.metric_series._jobs, "_c", DiesBeforeCommitting(storage.metric_series._jobs._c)
    )
    body = await gql.execute(REPORT_POINTS, id=job_id, points=points("loss", range(100, 300)))
    assert body["errors"][0]["message"] == "Unexpected error."
    monkeypatch.undo()
    monkeypatch.setattr(mongo_series, "LEASE_SECONDS", 0.5)
    # Read from summaries (more than 10 x maxPoints points): the bucket as it was before the
    # lost call, a true earlier state of it, not a mix.
    (stale,) = (await read(gql, job_id, keys=["loss"], max=10))["metricSeries"]
    assert (stale["totalPoints"], stale["max"], stale["lastStep"]) == (200, 19.9, 199)
    # The next write (to another bucket) heals the copies.
    await report(gql, job_id, points("loss", [5000], value=-1.0))
    (healed,) = (await read(gql, job_id, keys=["loss"], max=10))["metricSeries"]
    assert (healed["totalPoints"], healed["max"], healed["lastStep"]) == (301, 29.9, 5000)
