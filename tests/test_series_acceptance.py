"""Issue 13's acceptance audit: what the other tests/test_series_* files left unproven.

- the key and point limits hold for what is stored after a writer died mid-call: its new
  keys count, and a call refused before the next heals leaves the healing to that one;
- the key limit holds across the two forms at once: a ``metrics`` report (or a completion with
  metrics) landing while a points call is under way counts that call's keys;
- a refused call (1,001 points; 1,000 with a bad key last) changes nothing of a job that
  already holds series: its points, its keys, its latest ``metrics``;
- the live feed ends when a job is CANCELLED too (COMPLETED and FAILED are in
  test_series_live.py), and is coalesced: at least one poll interval (0.5 s) between two
  messages, counted, not timed; a cursor resumes on another server instance;
- the README's "From a training script" example, as written, stores its points;
- a long read opens only the buckets its range cuts (counted in buckets, not round trips);
- LTTB chooses the points the reference implementation chooses;
- a point without a timestamp takes the time the call was received (both forms).

Both backends where a database is involved.
"""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from graphql_api.domain import series
from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.series import MAX_POINTS_PER_CALL
from graphql_api.live import metric_feed
from graphql_api.services import training
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo import metric_series as mongo_series
from graphql_api.storage.series import SeriesPosition, WrittenPoint
from tests.api_helpers import mutate
from tests.conftest import GraphQLClient
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import ROOT, SubscriptionEnded
from tests.operations import CANCEL, COMPLETE, JOB, REPORT
from tests.series_helpers import REPORT_POINTS, points, read, report, running_job
from tests.test_series_crash import DiesBeforeCommitting
from tests.test_series_live import UPDATES, flat, running, send, subscribe
from tests.test_subscriptions import Live


async def died_writing(
    gql: GraphQLClient, storage: MongoStorage, monkeypatch: pytest.MonkeyPatch, job_id: str
) -> None:
    """A call storing five points of key ``b`` dies after writing its buckets, before its
    commit (its lease stays, expiring after 0.5 s)."""
    monkeypatch.setattr(mongo_series, "LEASE_SECONDS", 0.5)
    jobs = storage.metric_series._jobs
    alive = jobs._c
    monkeypatch.setattr(jobs, "_c", DiesBeforeCommitting(alive))
    body = await gql.execute(REPORT_POINTS, id=job_id, points=points("b", range(5)))
    assert body["errors"][0]["message"] == "Unexpected error."
    monkeypatch.setattr(jobs, "_c", alive)


async def test_keys_of_a_call_that_died_count_toward_the_key_limit(
    gql: GraphQLClient, storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next call heals the dead call's keys into the job's ``metrics``, so they count
    toward the limit that call is checked against."""
    # The real limit is 1,000 keys; the rule is the same at any size.
    monkeypatch.setattr(series, "MAX_KEYS_PER_JOB", 3)
    job_id = await running_job(gql)
    assert (await report(gql, job_id, points("a", range(5))))["__typename"] == "TrainingJob"
    await died_writing(gql, storage, monkeypatch, job_id)
    # Stored: a and b (the job's own record of b lags until a call heals it). Two more keys
    # would make four.
    for more in (["c", "d"], ["c", "d", "e"]):
        refused = await report(gql, job_id, [p for k in more for p in points(k, [0])])
        assert (refused["__typename"], refused["rule"]) == ("ValidationError", "max_items")
        assert f"would store {2 + len(more)}" in refused["message"], refused
    assert (await report(gql, job_id, points("c", [0])))["__typename"] == "TrainingJob"
    assert sorted((await gql.data(JOB, id=job_id))["trainingJob"]["metrics"]) == ["a", "b", "c"]
    still = await report(gql, job_id, points("d", [0]))
    assert (still["__typename"], still["rule"]) == ("ValidationError", "max_items"), still


async def test_a_call_refused_after_a_crash_leaves_the_healing_to_the_next(
    gql: GraphQLClient, storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that finds a dead writer's lease and is then refused (a limit) writes nothing,
    and must not clear the mark that has the next call heal the job: else the job's point
    count, keys and latest values would miss the dead call's points for good."""
    # The real limit is 10,000,000 points; the rule is the same at any size.
    monkeypatch.setattr(series, "MAX_POINTS_PER_JOB", 12)
    job_id = await running_job(gql)
    assert (await report(gql, job_id, points("a", range(5))))["__typename"] == "TrainingJob"
    await died_writing(gql, storage, monkeypatch, job_id)
    refused = await report(gql, job_id, points("c", range(3)))  # 5 + 5 + 3 > 12
    assert (refused["__typename"], refused["rule"]) == ("ValidationError", "max_items")
    assert "stores 10" in refused["message"], refused
    # The next call heals: b is the job's, and its points count toward the limit.
    assert (await report(gql, job_id, points("c", range(2))))["__typename"] == "TrainingJob"
    metrics = (await gql.data(JOB, id=job_id))["trainingJob"]["metrics"]
    assert metrics == {"a": 0.4, "b": 0.4, "c": 0.1}
    found = await read(gql, job_id)
    assert found["metricKeys"] == ["a", "b", "c"]
    assert [s["totalPoints"] for s in found["metricSeries"]] == [5, 5, 2]
    over = await report(gql, job_id, points("c", [2]))
    assert (over["__typename"], over["rule"]) == ("ValidationError", "max_items"), over
    assert "stores 12" in over["message"], over


@pytest.mark.parametrize("guarded", [False, True], ids=["atomic", "guarded"])
@pytest.mark.parametrize("form", ["metrics", "complete"])
async def test_keys_of_a_points_call_under_way_count_for_the_metrics_form(
    gql: GraphQLClient,
    storage: MongoStorage,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
    guarded: bool,
) -> None:
    """A ``metrics``-form report (or a completion with final metrics) landing while a points
    call holds the job's series lease counts that call's keys as stored: together the two
    can never take the job past the key limit. ``guarded``: as on FerretDB v1, where the
    lease is a guarded read-check-write."""
    storage.guard.enabled = guarded
    # The real limit is 1,000 keys; the rule is the same at any size (both forms).
    monkeypatch.setattr(series, "MAX_KEYS_PER_JOB", 3)
    monkeypatch.setattr(training, "MAX_KEYS_PER_JOB", 3)
    job_id = await running_job(gql)
    assert (await report(gql, job_id, points("a", range(5))))["__typename"] == "TrainingJob"
    store = storage.metric_series
    write_buckets = store._write_buckets
    leased, go_on = asyncio.Event(), asyncio.Event()

    async def paused(operations: Any) -> None:
        leased.set()  # the lease is taken and the limits checked: a, b
        await go_on.wait()
        await write_buckets(operations)

    monkeypatch.setattr(store, "_write_buckets", paused)
    points_call = asyncio.create_task(report(gql, job_id, points("b", range(5))))
    await asyncio.wait_for(leased.wait(), 30)
    if form == "metrics":
        other = await gql.data(REPORT, id=job_id, metrics={"c": 1, "d": 2})
        result = other["reportTrainingMetrics"]
    else:
        other = await gql.data(COMPLETE, id=job_id, metrics={"c": 1, "d": 2})
        result = other["completeTrainingJob"]
    go_on.set()
    assert (await points_call)["__typename"] == "TrainingJob"
    assert (result["__typename"], result["rule"]) == ("ValidationError", "max_items"), result
    assert "would have 4" in result["message"], result
    job = (await gql.data(JOB, id=job_id))["trainingJob"]
    assert (sorted(job["metrics"]), job["status"]) == (["a", "b"], "RUNNING")
    # With the points call done, one more key fits, and no more.
    fits = (await gql.data(REPORT, id=job_id, metrics={"c": 1}))["reportTrainingMetrics"]
    assert sorted(fits["metrics"]) == ["a", "b", "c"]
    over = (await gql.data(REPORT, id=job_id, metrics={"d": 1}))["reportTrainingMetrics"]
    assert over["__typename"] == "ValidationError", over


async def test_a_refused_call_changes_nothing_of_a_job_with_series(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    assert (await report(gql, job_id, points("loss", range(0, 2000, 2))))["__typename"]
    before = await read(gql, job_id, max=10_000)
    job_before = (await gql.data(JOB, id=job_id))["trainingJob"]
    too_many = points("loss", range(2000, 2000 + MAX_POINTS_PER_CALL + 1), value=-5.0)
    bad_key_last = too_many[:-2] + points("bad.key", [1])  # 1,000 points, the last refused
    for refused_call, field, rule in (
        (too_many, "points", "max_items"),
        (bad_key_last, "points[999].key", "key_dot"),
    ):
        refused = await report(gql, job_id, refused_call)
        assert (refused["__typename"], refused["field"], refused["rule"]) == (
            "ValidationError",
            field,
            rule,
        ), refused
    assert "1000" in (await report(gql, job_id, too_many))["message"]
    assert await read(gql, job_id, max=10_000) == before
    assert (await gql.data(JOB, id=job_id))["trainingJob"] == job_before


# Watching live ---------------------------------------------------------------------------


async def test_the_subscription_ends_when_a_job_is_cancelled(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await running(http, "live-cancel")
    client = await live.ws(server)
    op, _ = await subscribe(client, jobIds=[job_id])
    await send(http, job_id, points("loss", range(4)))
    await mutate(http, CANCEL, id=job_id)
    got: list[tuple[str, str, int, float]] = []
    ended: list[str] = []
    with pytest.raises(SubscriptionEnded, match="ended \\(complete\\)"):
        while True:
            message = await client.next(op, 10)
            got += flat(message)
            ended += message["trainingMetricUpdates"]["endedJobIds"]
    assert ended == [job_id]
    assert got == [(job_id, "loss", step, step / 10) for step in range(4)]
    refused = await http.data(REPORT_POINTS, id=job_id, points=points("loss", [9]))
    assert refused["reportTrainingMetrics"]["__typename"] == "InvalidTransitionError"


class EveryPollFindsAWrite:
    """The series of one RUNNING job to which a call of one point completes between any two
    reads of its position: the busiest a feed can be without a backlog."""

    def __init__(self) -> None:
        self.seq = 0

    async def positions(self, job_ids: Sequence[str]) -> dict[str, SeriesPosition]:
        self.seq += 1
        return {job: SeriesPosition(self.seq, TrainingStatus.RUNNING) for job in job_ids}

    async def written_between(
        self, ranges: Mapping[str, tuple[int, int]], keys: Sequence[str] | None
    ) -> list[WrittenPoint]:
        return [
            WrittenPoint(job, "loss", (seq, float(seq), 0), seq)
            for job, (after, upto) in ranges.items()
            for seq in range(after + 1, upto + 1)
        ]


async def test_messages_are_coalesced_to_at_most_two_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted, not timed: between two messages the feed waits its interval (0.5 s) at least
    once, so a subscription gets at most two messages a second, each with every point written
    since the one before."""
    timeline: list[float | str] = []

    async def recorded_sleep(seconds: float) -> None:
        timeline.append(seconds)

    monkeypatch.setattr(metric_feed, "asyncio", SimpleNamespace(sleep=recorded_sleep))
    source = EveryPollFindsAWrite()
    updates = metric_feed.metric_updates(cast(Any, source), ["job"], None, None)
    steps: list[int] = []
    async with aclosing(updates):
        async for update in updates:
            timeline.append("message")
            steps += [p.sample[0] for p in update.points]
            if timeline.count("message") == 12:
                break
    assert metric_feed.INTERVAL == 0.5
    between = "|".join(str(t) for t in timeline).split("message")[1:-1]
    assert len(between) == 11
    assert all(sum(float(s) for s in gap.strip("|").split("|")) >= 0.5 for gap in between)
    # The first message (the start) carries nothing; then every write once, in order.
    assert steps == list(range(2, source.seq + 1))


# The README ------------------------------------------------------------------------------


def readme_script_example() -> str:
    """The Python block of README's "From a training script", as a user would copy it."""
    section = (ROOT / "README.md").read_text().split("### From a training script", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block, "README's 'From a training script' has no python block"
    return block.group(1)


async def test_the_readme_training_script_example_stores_its_points(
    live: Live, tmp_path: Path
) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await running(http, "readme-script")
    script = readme_script_example()
    assert "http://127.0.0.1:8000/graphql" in script and '"job-42"' in script
    script = script.replace("http://127.0.0.1:8000/graphql", server.http_url)
    script = script.replace('"job-42"', repr(job_id))
    (tmp_path / "train.py").write_text(script)
    ran = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "train.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    job = (await http.data(SERIES_OF_README, id=job_id))["trainingJob"]
    assert job["metrics"] == {"loss": 1 / 10_000, "lr": 3e-4}
    loss, lr = job["metricSeries"]
    assert (loss["totalPoints"], loss["firstStep"], loss["lastStep"]) == (10_000, 1, 10_000)
    assert (loss["min"], loss["max"], loss["last"]) == (1 / 10_000, 1.0, 1 / 10_000)
    assert (lr["totalPoints"], lr["min"], lr["max"]) == (10_000, 3e-4, 3e-4)


SERIES_OF_README = """query($id: ID!) { trainingJob(jobId: $id) { metrics
  metricSeries(keys: ["loss", "lr"]) { key totalPoints firstStep lastStep min max last } } }"""


# Reading from summaries --------------------------------------------------------------------


@pytest.mark.parametrize("sampling", ["MIN_MAX", "LTTB", "LAST"])
async def test_a_long_read_opens_only_the_buckets_its_range_cuts(
    gql: GraphQLClient, storage: MongoStorage, monkeypatch: pytest.MonkeyPatch, sampling: str
) -> None:
    """Issue 13 item 6, counted in buckets rather than round trips: a series read downsampled
    is assembled from bucket summaries plus at most the two buckets the range cuts through,
    however many buckets it spans (here 98, a point every 100 steps); none when the range
    starts and ends between buckets."""
    job_id = await running_job(gql)
    steps = range(0, 100_000, 100)
    await report(gql, job_id, points("loss", steps, value=lambda s: -1.0 if s == 51_200 else s))
    store = storage.metric_series
    open_buckets = store.open
    opened: list[int] = []

    async def counting(refs: Sequence[str]) -> Any:
        opened.append(len(refs))
        return await open_buckets(refs)

    monkeypatch.setattr(store, "open", counting)
    for low, high, most in ((None, None, 0), (150, 70_050, 2), (10 * 1024, 60 * 1024 - 1, 0)):
        opened.clear()
        (loss,) = (await read(gql, job_id, max=10, sampling=sampling, **{"from": low, "to": high}))[
            "metricSeries"
        ]
        assert sum(opened) <= most, opened
        inside = [s for s in steps if (low or 0) <= s <= (high if high is not None else 10**9)]
        assert (loss["totalPoints"], loss["sampled"]) == (len(inside), len(inside) > 10)
        expected_min = -1.0 if 51_200 in inside else inside[0]
        assert (loss["min"], loss["max"]) == (expected_min, inside[-1])
        if sampling == "MIN_MAX" and loss["sampled"]:
            assert {expected_min, inside[-1]} <= {p["value"] for p in loss["points"]}


#: 50 points, 2 + 8 x 6 (so that the reference's bins and ours split alike), with a dip at 158.
LTTB_STEPS = [i * 5 + (i % 4) for i in range(50)]
LTTB_VALUES = [
    round(math.sin(i * 0.7) * 10 + (i % 5) - (25 if i == 31 else 0), 3) for i in range(50)
]
#: What the reference implementation (PyPI ``lttb`` 0.3.2, after Steinarsson 2013:
#: ``lttb.downsample(points, 10)``) keeps of them, computed once with it (not a dependency).
LTTB_REFERENCE_STEPS = [0, 12, 38, 66, 120, 146, 158, 192, 218, 246]


async def test_lttb_keeps_what_the_reference_implementation_keeps(gql: GraphQLClient) -> None:
    """Issue 13 item 2, "or follows LTTB": the tests elsewhere check LTTB's budget, order and
    end points; this pins its choice against the reference, through the API."""
    job_id = await running_job(gql)
    sent = [
        {"key": "loss", "step": s, "value": v} for s, v in zip(LTTB_STEPS, LTTB_VALUES, strict=True)
    ]
    assert (await report(gql, job_id, sent))["__typename"] == "TrainingJob"
    (loss,) = (await read(gql, job_id, max=10, sampling="LTTB"))["metricSeries"]
    assert [p["step"] for p in loss["points"]] == LTTB_REFERENCE_STEPS
    assert (loss["sampled"], loss["totalPoints"]) == (True, 50)


# Timestamps --------------------------------------------------------------------------------

REPORT_COLUMNS = """
mutation($id: ID!, $series: [MetricSeriesInput!]) {
  reportTrainingMetrics(jobId: $id, series: $series) { __typename }
}"""


async def test_a_point_without_a_timestamp_takes_the_time_the_call_was_received(
    gql: GraphQLClient,
) -> None:
    """Issue 13 item 1: ``timestamp`` defaults to now, in both forms; a given one is kept.
    Bounds, not durations: the stored time is between a reading of the clock before the call
    and one after it (to the millisecond, what is stored)."""
    job_id = await running_job(gql)
    before = datetime.now(UTC)
    before = before.replace(microsecond=before.microsecond // 1000 * 1000)
    sent = points("loss", [1, 2])
    sent[1]["timestamp"] = "2020-05-01T00:00:00Z"
    assert (await report(gql, job_id, sent))["__typename"] == "TrainingJob"
    columns = [{"key": "acc", "steps": [1, 2], "values": [0.5, 0.6]}]
    answer = await gql.data(REPORT_COLUMNS, id=job_id, series=columns)
    assert answer["reportTrainingMetrics"]["__typename"] == "TrainingJob"
    after = datetime.now(UTC)
    acc, loss = (await read(gql, job_id))["metricSeries"]
    stamps = {
        (found["key"], p["step"]): datetime.fromisoformat(p["timestamp"])
        for found in (acc, loss)
        for p in found["points"]
    }
    assert stamps.pop(("loss", 2)) == datetime(2020, 5, 1, tzinfo=UTC)
    assert len(stamps) == 3
    assert all(before <= stamp <= after for stamp in stamps.values()), (before, stamps, after)


async def test_a_cursor_resumes_on_another_server_instance(live: Live) -> None:
    """docs/metrics.md: resume with a message's cursor "on any server instance": every point
    written after it, none before, once each."""
    first, second = await live.start(), await live.start()
    http = live.http(first)
    job_id = await running(http, "live-two-instances")
    client = await live.ws(first)
    op, _ = await subscribe(client, jobIds=[job_id])
    await send(http, job_id, points("loss", range(6)))
    got: list[tuple[str, str, int, float]] = []
    while len(got) < 6:
        message = await client.next(op, 10)
        got += flat(message)
        cursor = message["trainingMetricUpdates"]["cursor"]
    await client.unsubscribe(op)
    await send(http, job_id, points("loss", range(6, 20)))
    await send(live.http(second), job_id, points("acc", range(3)))
    other = await live.ws(second)
    op = await other.subscribe(UPDATES, jobIds=[job_id], after=cursor)
    resumed: list[tuple[str, str, int, float]] = []
    while len(resumed) < 14 + 3:
        resumed += flat(await other.next(op, 10))
    expected = [(job_id, "loss", s, s / 10) for s in range(6, 20)]
    expected += [(job_id, "acc", s, s / 10) for s in range(3)]
    assert sorted(resumed) == sorted(expected)
    assert await other.nothing_more(op, 1.2)
