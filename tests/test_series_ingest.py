"""What a points call costs and keeps (issue 13, ingest goal): points past every stored step of
their key (what a training script sends) are appended without reading their buckets, in four
round trips; the summaries they move stay exact (min and max ties keep the first point, the
copies read by ``metricSeries`` equal the buckets' own); a late point or a retry still replaces
what is stored; an append that would land out of order is refused whole. Both backends."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from graphql_api.domain.errors import ValidationError
from graphql_api.domain.series import check_points, check_series
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo import metric_series as mongo_series
from tests.conftest import GraphQLClient
from tests.operations import JOB
from tests.series_helpers import (
    REPORT_POINTS,
    points,
    quiet_app_fixture,
    read,
    report,
    running_job,
)

__all__ = ["quiet_app_fixture"]  # the app fixture: the feed's polls stay out of the counts

SUMMARY_FIELDS = ("n", "first", "last", "min", "max", "w")


async def test_an_appending_call_costs_four_round_trips_and_reads_no_bucket(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    job_id = await running_job(gql)
    await report(gql, job_id, points("loss", range(0, 250)) + points("acc", range(0, 250)))
    expected = list(range(250))
    for start in (250, 500, 900, 2100):  # within a bucket, across a boundary, a new bucket
        expected += range(start, start + 250)
        sent = points("loss", range(start, start + 250)) + points("acc", range(start, start + 5))
        storage.stats.round_trips = 0
        job = await report(gql, job_id, sent)
        assert job["__typename"] == "TrainingJob", job
        # The lease, the buckets, their summary copies, the commit (was 6: the lease took
        # a read and a write, and every call read the buckets it touched).
        assert storage.stats.round_trips == 4
    # A late point (below the key's last step) is merged into its bucket as read: one more.
    storage.stats.round_trips = 0
    assert (await report(gql, job_id, points("loss", [3], value=-1.0)))["__typename"]
    assert storage.stats.round_trips == 5
    (acc, loss) = (await read(gql, job_id, max=10_000))["metricSeries"]
    assert [p["step"] for p in loss["points"]] == expected
    assert loss["points"][3]["value"] == -1.0 and loss["min"] == -1.0
    assert acc["totalPoints"] == 250 + 4 * 5


def expected_summary(stored: dict[int, float]) -> tuple[Any, ...]:
    steps = sorted(stored)
    low = min(steps, key=lambda s: (stored[s], s))  # the first point of the lowest value
    high = min(steps, key=lambda s: (-stored[s], s))
    return len(steps), steps[0], steps[-1], (low, stored[low]), (high, stored[high])


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_summaries_moved_by_appends_are_exact_and_their_copies_equal_the_buckets(
    gql: GraphQLClient, storage: MongoStorage, seed: int
) -> None:
    """Random batches, mostly appends, some late points and retries, with values from a
    small set so that min and max tie across calls; then every bucket's summary (and its
    copy, which reads use) is checked against the points it holds."""
    rng = random.Random(seed)
    job_id = await running_job(gql)
    stored: dict[int, dict[int, float]] = {}  # bucket -> step -> value
    step = 0
    for _ in range(12):
        batch: dict[int, float] = {}
        for _ in range(rng.randint(1, 400)):
            step += rng.choice([1, 1, 2, 7, 300])
            batch[step] = rng.choice([0.0, 0.5, 1.0, 2.0, -3.0, 9.0])
        if rng.random() < 0.4 and step > 10:  # late points: retries and fills
            for late in rng.sample(range(step), 5):
                batch[late] = rng.choice([-3.0, 9.0, 4.0])
        sent = [{"key": "loss", "step": s, "value": v} for s, v in batch.items()]
        rng.shuffle(sent)
        assert (await report(gql, job_id, sent))["__typename"] == "TrainingJob"
        for s, v in batch.items():
            stored.setdefault(s >> mongo_series.BUCKET_SHIFT, {})[s] = v

    buckets = {d["b"]: d async for d in storage.database["metric_buckets"].find({})}
    copies = {d["b"]: d async for d in storage.database["metric_summaries"].find({})}
    assert buckets.keys() == copies.keys() == stored.keys()
    for b, points_of in stored.items():
        bucket = buckets[b]
        assert bucket["s"] == sorted(points_of)
        assert bucket["v"] == [points_of[s] for s in sorted(points_of)]
        n, first, last, low, high = expected_summary(points_of)
        summary = (bucket["n"], bucket["first"][0], bucket["last"][0])
        assert summary == (n, first, last)
        assert (tuple(bucket["min"][:2]), tuple(bucket["max"][:2])) == (low, high)
        assert {f: copies[b][f] for f in SUMMARY_FIELDS} == {f: bucket[f] for f in SUMMARY_FIELDS}

    # Through the API: a read from summaries (few points asked of many) and a whole read.
    everything = {s: v for points_of in stored.values() for s, v in points_of.items()}
    n, first, last, low, high = expected_summary(everything)
    for max_points in (10, 10_000):
        (loss,) = (await read(gql, job_id, max=max_points))["metricSeries"]
        assert (loss["totalPoints"], loss["firstStep"], loss["lastStep"]) == (n, first, last)
        assert (loss["min"], loss["max"]) == (low[1], high[1])
        chosen = {p["step"]: p["value"] for p in loss["points"]}
        assert chosen.get(low[0]) == low[1] and chosen.get(high[0]) == high[1]
    job = (await gql.data(JOB, id=job_id))["trainingJob"]
    assert job["metrics"] == {"loss": everything[last]}


async def test_an_append_that_would_land_out_of_order_is_refused_and_heals(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    """If the job's record of its last step were behind its buckets (a writer whose lease ran
    out wrote after the next one read the job), an append must not put points after higher
    ones: the bucket's own last step is checked by the write itself."""
    job_id = await running_job(gql)
    await report(gql, job_id, points("loss", range(100)))
    jobs = storage.database["training_jobs"]
    await jobs.update_one({"_id": job_id}, {"$set": {"metric_steps.loss": 10}})
    refused = await report(gql, job_id, points("loss", range(50, 60), value=7.0))
    assert refused["__typename"] == "ConflictError", refused
    (bucket,) = [d async for d in storage.database["metric_buckets"].find({})]
    assert bucket["s"] == list(range(100)) and bucket["n"] == 100
    # Sent again, the points replace the stored ones (the next call recounts the job first).
    assert (await report(gql, job_id, points("loss", range(50, 60), value=7.0)))["__typename"]
    (loss,) = (await read(gql, job_id, max=10_000))["metricSeries"]
    assert loss["totalPoints"] == 100 and loss["max"] == 9.9 and loss["last"] == 9.9
    assert [p["value"] for p in loss["points"][50:60]] == [7.0] * 10
    assert (await gql.data(JOB, id=job_id))["trainingJob"]["metrics"] == {"loss": 9.9}


async def test_a_call_whose_lease_ran_out_before_writing_writes_nothing(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await running_job(gql)
    await report(gql, job_id, points("loss", range(10)))
    monkeypatch.setattr(mongo_series, "LEASE_SECONDS", 0.0)  # out before the first write
    refused = await report(gql, job_id, points("loss", range(10, 20)))
    assert refused["__typename"] == "ConflictError", refused
    assert "nothing was written" in refused["message"]
    monkeypatch.undo()
    (loss,) = (await read(gql, job_id))["metricSeries"]
    assert loss["totalPoints"] == 10
    assert (await report(gql, job_id, points("loss", range(10, 20))))["__typename"]
    (loss,) = (await read(gql, job_id))["metricSeries"]
    assert loss["totalPoints"] == 20


class DiesAfterTheBuckets:
    """The summary copies' and the job documents' collections of a server that dies right
    after appending to the buckets: no copy moves, no commit, the lease stays."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _dies(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionResetError("the server process died")

    replace_one = update_one = bulk_write = _dies

    async def find_one_and_update(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "metric_lease.seq" in query:
            raise ConnectionResetError("the server process died")
        return await self._inner.find_one_and_update(query, *args, **kwargs)


async def test_appends_lost_before_their_copies_and_commit_heal_with_the_next_call(
    gql: GraphQLClient, storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mongo_series, "LEASE_SECONDS", 0.5)
    job_id = await running_job(gql)
    await report(gql, job_id, points("loss", range(200)))
    store = storage.metric_series
    copies, jobs = store._summaries._c, store._jobs._c
    monkeypatch.setattr(store._summaries, "_c", DiesAfterTheBuckets(copies))
    monkeypatch.setattr(store._jobs, "_c", DiesAfterTheBuckets(jobs))
    body = await gql.execute(
        REPORT_POINTS, id=job_id, points=points("loss", range(200, 300), value=lambda s: -s)
    )
    assert body["errors"][0]["message"] == "Unexpected error."
    monkeypatch.setattr(store._summaries, "_c", copies)
    monkeypatch.setattr(store._jobs, "_c", jobs)
    # Read from summaries: the bucket as it was before the lost call (not a mix).
    (before,) = (await read(gql, job_id, max=10))["metricSeries"]
    assert (before["totalPoints"], before["min"], before["lastStep"]) == (200, 0.0, 199)
    # The next call (an append past the lost points) waits out the lease, heals, and lands.
    assert (await report(gql, job_id, points("loss", [300], value=0.5)))["__typename"]
    (healed,) = (await read(gql, job_id, max=10))["metricSeries"]
    assert (healed["totalPoints"], healed["min"], healed["lastStep"]) == (301, -299.0, 300)
    # The lost call sent again replaces its points: nothing counted twice.
    again = points("loss", range(200, 300), value=lambda s: -s)
    assert (await report(gql, job_id, again))["__typename"] == "TrainingJob"
    (loss,) = (await read(gql, job_id, max=10_000))["metricSeries"]
    assert loss["totalPoints"] == 301 and [p["step"] for p in loss["points"]] == list(range(301))


@pytest.mark.parametrize("seed", range(20))
def test_the_columnar_check_keeps_what_the_point_by_point_check_keeps(seed: int) -> None:
    """``check_series`` takes whole columns at a time; on any mix of ordered and unordered
    steps, repeated steps and keys repeated across entries, integers among the values, it
    keeps exactly what ``check_points`` keeps for the same points (the last for a step)."""
    rng = random.Random(seed)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    entries = []
    for _ in range(rng.randint(1, 5)):
        size = rng.randint(0, 40)
        steps = sorted(rng.sample(range(5000), size))
        if rng.random() < 0.4:
            rng.shuffle(steps)
        if rng.random() < 0.3 and steps:
            steps.append(rng.choice(steps))
        values: list[Any] = [rng.choice([rng.random(), rng.randint(-5, 5)]) for _ in steps]
        entries.append({"key": rng.choice(["loss", "acc", "lr"]), "steps": steps, "values": values})
    if not any(e["steps"] for e in entries):
        entries.append({"key": "loss", "steps": [1], "values": [1.0]})
    flat = [
        {"key": e["key"], "step": s, "value": v}
        for e in entries
        for s, v in zip(e["steps"], e["values"], strict=True)
    ]
    by_columns = {c.key: c for c in check_series(entries, now)}
    by_points = {c.key: c for c in check_points(flat, now)}
    assert by_columns == by_points
    for columns in by_columns.values():
        assert columns.steps == sorted(set(columns.steps))
        assert all(type(v) is float for v in columns.values)


def test_finite_values_whose_sum_overflows_are_taken() -> None:
    (loss,) = check_series(
        [{"key": "loss", "steps": [1, 2, 3], "values": [1e308, 1e308, 10**300]}],
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert loss.values == [1e308, 1e308, 1e300]
    with pytest.raises(ValidationError) as refused:
        check_series(
            [{"key": "loss", "steps": [1, 2, 3], "values": [1e308, 10**400, 1.0]}],
            datetime(2026, 3, 1, tzinfo=UTC),
        )
    assert refused.value.field == "series[0].values[1]"


async def test_a_guarded_server_merges_every_call_and_stores_the_same(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    """FerretDB v1 (the server that needs the update guard) has no update pipelines: there
    the lease is the guarded read-check-write and every bucket is read and merged, as before
    appends existed; what is stored is the same."""
    storage.guard.enabled = True
    job_id = await running_job(gql)
    await report(gql, job_id, points("loss", range(0, 250)))
    storage.stats.round_trips = 0
    assert (await report(gql, job_id, points("loss", range(250, 500))))["__typename"]
    # The lease (read, claim, write, release), the bucket read, the buckets, their copies,
    # the commit.
    assert storage.stats.round_trips == 8
    (loss,) = (await read(gql, job_id, max=10_000))["metricSeries"]
    assert [p["step"] for p in loss["points"]] == list(range(500))
    assert (loss["totalPoints"], loss["max"]) == (500, 49.9)
