"""Downsampling keeps every group's extremes, and the totals are exact (issue 13 item 2).

Property tests of the pure functions (raw points, bucket summaries, and a whole range read
over any bucket layout), then the same properties through the API on both backends, with a
series long enough to be read from bucket summaries.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphql_api.domain import downsampling
from graphql_api.domain.downsampling import MetricSampling, Sample, Summary
from graphql_api.domain.series import BucketSummary, SeriesRange, buckets_to_open, read_series
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.series_helpers import (
    quiet_app_fixture,  # noqa: F401 (fixture)
    read,
    report,
    running_job,
)

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
#: No per-example deadline: the machine is shared, and time is not what these tests check.
pure = settings(deadline=None, max_examples=200)


@st.composite
def series_samples(draw: st.DrawFn, max_size: int = 400) -> list[Sample]:
    steps = draw(st.lists(st.integers(0, 5_000), min_size=1, max_size=max_size, unique=True))
    return [(step, draw(values), step * 10) for step in sorted(steps)]


def assert_is_a_subset_in_order(kept: list[Sample], samples: list[Sample], limit: int) -> None:
    assert len(kept) <= limit
    assert set(kept) <= set(samples)
    assert [s[0] for s in kept] == sorted({s[0] for s in kept})


@pure
@given(series_samples(), st.integers(10, 120))
def test_min_max_keeps_every_groups_min_and_max(samples: list[Sample], max_points: int) -> None:
    kept = downsampling.raw(samples, max_points, MetricSampling.MIN_MAX)
    assert_is_a_subset_in_order(kept, samples, max_points)
    if len(samples) <= max_points:
        assert kept == samples
        return
    for start, end in downsampling.chunks(len(samples), max_points // 2):
        group = samples[start:end]
        assert min(s[1] for s in group) in {s[1] for s in kept if group[0][0] <= s[0]}
        summary = Summary.of(group)
        assert summary.min in kept and summary.max in kept


@pure
@given(series_samples(), st.integers(10, 120), st.sampled_from(list(MetricSampling)))
def test_every_method_returns_stored_points_within_the_budget(
    samples: list[Sample], max_points: int, sampling: MetricSampling
) -> None:
    kept = downsampling.raw(samples, max_points, sampling)
    assert_is_a_subset_in_order(kept, samples, max_points)
    if sampling is not MetricSampling.MIN_MAX and len(samples) > max_points:
        assert kept[-1] == samples[-1]  # the newest point is always shown
    if sampling is MetricSampling.LTTB and len(samples) > max_points:
        assert kept[0] == samples[0]


@st.composite
def bucketed(draw: st.DrawFn) -> tuple[list[Sample], list[list[Sample]]]:
    """A series cut into consecutive buckets of any sizes."""
    samples = draw(series_samples(max_size=600))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(samples) - 1)), max_size=80)))
    bounds = [0, *[c for c in cuts if c < len(samples)], len(samples)]
    parts = [samples[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return samples, parts


@pure
@given(bucketed(), st.integers(10, 60))
def test_summaries_keep_every_groups_min_and_max(
    series: tuple[list[Sample], list[list[Sample]]], max_points: int
) -> None:
    samples, parts = series
    summaries = [Summary.of(p) for p in parts]
    kept = downsampling.summarised(summaries, max_points, MetricSampling.MIN_MAX)
    assert_is_a_subset_in_order(kept, samples, max_points)
    for start, end in downsampling.chunks(len(summaries), max_points // 2):
        group = Summary.merge(summaries[start:end])
        assert group.min in kept and group.max in kept
    for sampling in (MetricSampling.LTTB, MetricSampling.LAST):
        other = downsampling.summarised(summaries, max_points, sampling)
        assert_is_a_subset_in_order(other, samples, max_points)


@pure
@given(
    bucketed(),
    st.integers(10, 60),
    st.integers(0, 5_000),
    st.integers(0, 5_000),
    st.sampled_from(list(MetricSampling)),
)
def test_a_range_read_is_exact_whatever_the_bucket_layout(
    series: tuple[list[Sample], list[list[Sample]]],
    max_points: int,
    low: int,
    span: int,
    sampling: MetricSampling,
) -> None:
    samples, parts = series
    where = SeriesRange(None, low, low + span, max_points, sampling)
    buckets = [BucketSummary(str(i), Summary.of(p)) for i, p in enumerate(parts)]
    stored = {str(i): p for i, p in enumerate(parts)}
    to_open = buckets_to_open(buckets, where)
    found = read_series("k", buckets, {ref: stored[ref] for ref in to_open}, where)
    inside = [s for s in samples if low <= s[0] <= low + span]
    assert found.total_points == len(inside)
    assert found.sampled == (len(found.points) < len(inside))
    assert_is_a_subset_in_order(found.points, inside, max_points)
    if not inside:
        assert found.points == [] and found.min is None
        return
    assert (found.first_step, found.last_step) == (inside[0][0], inside[-1][0])
    assert found.min == min(s[1] for s in inside)
    assert found.max == max(s[1] for s in inside)
    assert found.last == inside[-1][1]
    if sampling is MetricSampling.MIN_MAX:
        assert found.min in {s[1] for s in found.points}
        assert found.max in {s[1] for s in found.points}
    # Only the buckets the range cuts through are opened, unless the range is small.
    cut = [
        b
        for b in buckets
        if b.summary.first[0] < low <= b.summary.last[0]
        or b.summary.first[0] <= low + span < b.summary.last[0]
    ]
    if len(inside) > 10 * max_points:
        assert len(to_open) <= len(cut)


# Through the API ------------------------------------------------------------------------


def spiky(step: int) -> float:
    """A slowly falling loss with rare spikes and dips that a naive sampler would lose."""
    if step % 7919 == 13:
        return 50.0 + step / 1e4
    if step % 6007 == 5:
        return -50.0 - step / 1e4
    return 1.0 / (1 + step / 1000)


async def store_series(gql: GraphQLClient, job_id: str, key: str, steps: range) -> None:
    batch: list[dict[str, Any]] = []
    for step in steps:
        batch.append({"key": key, "step": step, "value": spiky(step)})
        if len(batch) == 1000:
            assert (await report(gql, job_id, batch))["__typename"] == "TrainingJob"
            batch = []
    if batch:
        assert (await report(gql, job_id, batch))["__typename"] == "TrainingJob"


async def test_a_long_series_is_read_from_summaries_without_losing_spikes(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    job_id = await running_job(gql)
    steps = range(0, 60_000, 2)  # 30,000 points over ~59 buckets
    await store_series(gql, job_id, "loss", steps)
    ranges = ((None, None), (1_001, 40_999), (33_333, 33_999), (0, 0), (59_998, 10**12))
    for sampling, (low, high) in itertools.product(("MIN_MAX", "LTTB", "LAST"), ranges):
        before = storage.stats.round_trips
        (loss,) = (
            await read(
                gql, job_id, keys=["loss"], max=100, sampling=sampling, **{"from": low, "to": high}
            )
        )["metricSeries"]
        inside = [s for s in steps if (low or 0) <= s <= (high if high is not None else 10**9)]
        assert loss["totalPoints"] == len(inside)
        assert loss["sampled"] == (len(loss["points"]) < len(inside))
        assert len(loss["points"]) <= 100
        assert (loss["firstStep"], loss["lastStep"]) == (inside[0], inside[-1])
        assert loss["min"] == min(spiky(s) for s in inside)
        assert loss["max"] == max(spiky(s) for s in inside)
        assert loss["last"] == spiky(inside[-1])
        got = [p["step"] for p in loss["points"]]
        assert got == sorted(set(got)) and set(got) <= set(inside)
        assert all(p["value"] == spiky(p["step"]) for p in loss["points"])
        if sampling == "MIN_MAX":
            values = {p["value"] for p in loss["points"]}
            assert loss["min"] in values and loss["max"] in values
        # The job, its keys, the summaries, the buckets the range cuts through: bounded,
        # whatever the length of the series.
        assert storage.stats.round_trips - before <= 4


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(st.tuples(st.integers(0, 20_000), values), min_size=1, max_size=300),
    st.integers(10, 40),
)
async def test_property_through_the_api_min_max_and_totals(
    gql: GraphQLClient, sent: list[tuple[int, float]], max_points: int
) -> None:
    job_id = await running_job(gql)
    await report(gql, job_id, [{"key": "k", "step": s, "value": v} for s, v in sent])
    stored = dict(sent)  # a later point for a step replaces an earlier one
    (found,) = (await read(gql, job_id, keys=["k"], max=max_points))["metricSeries"]
    assert found["totalPoints"] == len(stored)
    values = {p["value"] for p in found["points"]}
    assert min(stored.values()) in values and max(stored.values()) in values
    assert all(stored[p["step"]] == p["value"] for p in found["points"])
    assert len(found["points"]) <= max_points
