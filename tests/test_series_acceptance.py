"""Issue 13's acceptance audit: what the other tests/test_series_* files left unproven.

- the key and point limits hold for what is stored after a writer died mid-call: its new
  keys count, and a call refused before the next heals leaves the healing to that one;
- a refused call (1,001 points, too many keys) changes nothing of a job that already holds
  series: its points, its keys, its latest ``metrics``;

Both backends.
"""

from __future__ import annotations

import pytest

from graphql_api.domain import series
from graphql_api.domain.series import MAX_POINTS_PER_CALL
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo import metric_series as mongo_series
from tests.conftest import GraphQLClient
from tests.operations import JOB
from tests.series_helpers import REPORT_POINTS, points, read, report, running_job
from tests.test_series_crash import DiesBeforeCommitting


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


async def test_a_refused_call_changes_nothing_of_a_job_with_series(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    assert (await report(gql, job_id, points("loss", range(0, 2000, 2))))["__typename"]
    before = await read(gql, job_id, max=10_000)
    job_before = (await gql.data(JOB, id=job_id))["trainingJob"]
    too_many = points("loss", range(2000, 2000 + MAX_POINTS_PER_CALL + 1), value=-5.0)
    for refused_call in (too_many, too_many[:-1] + points("bad.key", [1])):
        refused = await report(gql, job_id, refused_call)
        assert refused["__typename"] == "ValidationError", refused
    assert "1000" in (await report(gql, job_id, too_many))["message"]
    assert await read(gql, job_id, max=10_000) == before
    assert (await gql.data(JOB, id=job_id))["trainingJob"] == job_before
