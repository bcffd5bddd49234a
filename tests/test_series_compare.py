"""Comparing runs: the series of many jobs in one query cost a fixed number of database round
trips, whatever the number of jobs and keys (issue 13 item 3)."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api import series_loaders
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.series_helpers import (
    quiet_app_fixture,  # noqa: F401 (fixture)
    report,
    running_job,
)

COMPARE = """
query($first: Int!, $keys: [String!], $from: Int64, $to: Int64, $max: Int!) {
  trainingJobs(first: $first, filter: {statuses: [RUNNING]}) {
    edges { node {
      jobId
      metricKeys
      metricSeries(keys: $keys, fromStep: $from, toStep: $to, maxPoints: $max) {
        key totalPoints sampled min max points { step value }
      }
    } }
  }
}"""

KEYS = ["loss", "acc", "lr"]


async def seed(gql: GraphQLClient, jobs: int) -> dict[str, int]:
    """Jobs with three series of 300 points over three buckets each; job n's values are
    shifted by n so that a mix-up between jobs shows."""
    shifts = {}
    for n in range(jobs):
        job_id = await running_job(gql)
        shifts[job_id] = n
        sent = [
            {"key": key, "step": step, "value": n + k + step / 1e4}
            for k, key in enumerate(KEYS)
            for step in range(0, 3000, 10)
        ]
        assert (await report(gql, job_id, sent))["__typename"] == "TrainingJob"
    return shifts


async def compare(
    gql: GraphQLClient, storage: MongoStorage, jobs: int, **arguments: Any
) -> tuple[list[dict[str, Any]], int]:
    before = storage.stats.round_trips
    data = await gql.data(COMPARE, first=jobs, keys=KEYS, **arguments)
    nodes = [edge["node"] for edge in data["trainingJobs"]["edges"]]
    return nodes, storage.stats.round_trips - before


@pytest.mark.parametrize(
    "window",
    [
        {"from": None, "to": None, "max": 500},  # every bucket whole, read raw
        {"from": 1_005, "to": 2_995, "max": 500},  # the range cuts buckets: some opened
        {"from": 0, "to": 10**12, "max": 10},  # more points than asked: downsampled
    ],
)
async def test_twenty_jobs_by_three_keys_cost_the_round_trips_of_one(
    gql: GraphQLClient, storage: MongoStorage, window: dict[str, Any]
) -> None:
    shifts = await seed(gql, 20)
    one, trips_for_one = await compare(gql, storage, 1, **window)
    twenty, trips_for_twenty = await compare(gql, storage, 20, **window)
    # The jobs page, their keys, the bucket summaries, the buckets to open: four at most.
    assert trips_for_twenty == trips_for_one <= 4
    assert len(twenty) == 20
    for node in twenty:
        assert node["metricKeys"] == sorted(KEYS)
        assert [s["key"] for s in node["metricSeries"]] == KEYS
        shift = shifts[node["jobId"]]
        for k, found in enumerate(node["metricSeries"]):
            low = window["from"] or 0
            high = min(window["to"] if window["to"] is not None else 2990, 2990)
            steps = [s for s in range(0, 3000, 10) if low <= s <= high]
            assert found["totalPoints"] == len(steps)
            assert found["min"] == shift + k + steps[0] / 1e4
            assert found["max"] == shift + k + steps[-1] / 1e4
            assert len(found["points"]) <= window["max"]
            assert found["sampled"] == (len(found["points"]) < len(steps))
            assert all(p["value"] == shift + k + p["step"] / 1e4 for p in found["points"])
    assert (
        one[0]["metricSeries"]
        == next(n for n in twenty if n["jobId"] == one[0]["jobId"])["metricSeries"]
    )


async def test_different_arguments_are_batched_per_argument_set(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    await seed(gql, 6)
    query = """{ trainingJobs(first: 6) { edges { node {
        a: metricSeries(keys: ["loss"], maxPoints: 10) { totalPoints points { step } }
        b: metricSeries(keys: ["acc", "lr"], fromStep: 100) { totalPoints }
        c: metricSeries(keys: ["loss"], maxPoints: 10) { max }
    } } } }"""
    before = storage.stats.round_trips
    data = await gql.data(query)
    # The page; then per distinct argument set (a and c share one): summaries, buckets.
    assert storage.stats.round_trips - before <= 1 + 2 * 2
    nodes = [edge["node"] for edge in data["trainingJobs"]["edges"]]
    assert len(nodes) == 6
    for node in nodes:
        assert node["a"][0]["totalPoints"] == 300 and len(node["a"][0]["points"]) <= 10
        assert [s["totalPoints"] for s in node["b"]] == [290, 290]
        assert node["c"][0]["max"] is not None


async def test_a_request_returns_at_most_its_budget_of_points_and_says_so(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real budget is 250,000 points per request; the rule is the same at any size.
    monkeypatch.setattr(series_loaders, "MAX_POINTS_PER_REQUEST", 1_500)
    await seed(gql, 3)
    query = """{ trainingJobs(first: 3) { edges { node {
        metricSeries(keys: ["loss", "acc"], maxPoints: 500) { totalPoints points { step } }
    } } } }"""
    body = await gql.execute(query)
    # 3 jobs x 2 series x 300 points = 1,800 > 1,500: a coded error, never a silent cut.
    error = body["errors"][0]
    assert (error["extensions"]["field"], error["extensions"]["rule"]) == ("maxPoints", "max")
    assert "1,500" in error["message"]
    smaller = await gql.data(query.replace("maxPoints: 500", "maxPoints: 200"))
    nodes = [e["node"] for e in smaller["trainingJobs"]["edges"]]
    assert all(len(s["points"]) <= 200 for n in nodes for s in n["metricSeries"])
