"""Limits hold for the stored record, not only per call (issue 10, item 2).

Metrics merge: each report adds keys to what is stored. A report that would take the stored
record over its limit (a model version: 256 metrics; a job: 1,000 keys, its metric series'
keys included, issue 13) is refused with a ValidationError (rule ``max_items``) and writes
nothing, no event either; concurrent reports that each fit can never together exceed it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphql_api.domain.series import MAX_KEYS_PER_JOB
from graphql_api.domain.values import MAX_METRICS
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import register
from tests.api_helpers import running_job as new_running_job
from tests.conftest import GraphQLClient
from tests.operations import (
    COMPLETE,
    JOB,
    MODEL,
    PROMOTE,
    REPORT,
    UPDATE_MODEL_METRICS,
)


def keys(prefix: str, count: int, value: float = 0.5) -> dict[str, float]:
    return {f"{prefix}{i}": value for i in range(count)}


#: Keys a job is filled with first, so that it has room for MAX_METRICS more: the per-call cap
#: (256) and the job's stored limit (1,000) then meet as a model version's limits do.
FILL = MAX_KEYS_PER_JOB - MAX_METRICS


def filled(metrics: dict[str, float]) -> dict[str, float]:
    return {**keys("fill", FILL), **metrics}


async def running_job(gql: GraphQLClient, *, fill: bool = True) -> str:
    """A RUNNING job holding FILL keys (unless ``fill`` is False)."""
    job_id = await new_running_job(gql)
    for start in range(0, FILL if fill else 0, MAX_METRICS):
        batch = {f"fill{i}": 0.5 for i in range(start, min(start + MAX_METRICS, FILL))}
        stored = (await gql.data(REPORT, id=job_id, metrics=batch))["reportTrainingMetrics"]
        assert stored["__typename"] == "TrainingJob", stored
    return job_id


async def job_metrics(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(JOB, id=job_id))["trainingJob"]["metrics"]
    return result


async def model_metrics(gql: GraphQLClient, model_id: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(MODEL, id=model_id))["modelVersion"]["metrics"]
    return result


def assert_over_limit(
    result: dict[str, Any], stored: int, merged: int, limit: int = MAX_METRICS
) -> None:
    assert result["__typename"] == "ValidationError", result
    assert (result["field"], result["rule"]) == ("metrics", "max_items")
    assert f"has {stored} metrics" in result["message"]
    assert f"would have {merged}" in result["message"]
    assert str(limit) in result["message"]


# (first call's new keys, second call's new keys): each call is within the per-call cap.
SPLITS = [(200, 100), (256, 1), (1, 256), (129, 128), (255, 2)]


@pytest.mark.parametrize(("first", "second"), SPLITS)
async def test_reports_that_together_exceed_the_cap_are_refused_and_write_nothing(
    gql: GraphQLClient, storage: MongoStorage, first: int, second: int
) -> None:
    job_id = await running_job(gql)
    ok = (await gql.data(REPORT, id=job_id, metrics=keys("a", first)))["reportTrainingMetrics"]
    assert ok["__typename"] == "TrainingJob" and len(ok["metrics"]) == FILL + first
    head = await storage.events.head()

    refused = (await gql.data(REPORT, id=job_id, metrics=keys("b", second, 0.9)))[
        "reportTrainingMetrics"
    ]

    assert_over_limit(refused, FILL + first, FILL + first + second, MAX_KEYS_PER_JOB)
    assert await job_metrics(gql, job_id) == filled(keys("a", first))
    assert await storage.events.head() == head  # no event for a refused call


async def test_replacing_stored_keys_at_the_cap_is_allowed(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    await gql.data(REPORT, id=job_id, metrics=keys("m", MAX_METRICS))
    # Same keys, new values: the stored record keeps 1,000 metrics.
    again = (await gql.data(REPORT, id=job_id, metrics=keys("m", MAX_METRICS, 0.7)))[
        "reportTrainingMetrics"
    ]
    assert again["__typename"] == "TrainingJob"
    assert again["metrics"] == filled(keys("m", MAX_METRICS, 0.7))
    # Some old keys and one new: 1,001.
    mixed = {**keys("m", 10, 0.1), "new": 1.0}
    refused = (await gql.data(REPORT, id=job_id, metrics=mixed))["reportTrainingMetrics"]
    assert_over_limit(refused, MAX_KEYS_PER_JOB, MAX_KEYS_PER_JOB + 1, MAX_KEYS_PER_JOB)


async def test_many_small_reports_cannot_grow_a_job_without_bound(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    outcomes = []
    for call in range(12):  # 12 x 25 = 300 distinct keys offered
        result = (await gql.data(REPORT, id=job_id, metrics=keys(f"c{call}_", 25)))[
            "reportTrainingMetrics"
        ]
        outcomes.append(result["__typename"])
    assert outcomes == ["TrainingJob"] * 10 + ["ValidationError"] * 2
    assert len(await job_metrics(gql, job_id)) == FILL + 250


async def test_final_metrics_of_a_completion_count_too(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    job_id = await running_job(gql)
    await gql.data(REPORT, id=job_id, metrics=keys("a", 200))
    head = await storage.events.head()
    refused = (await gql.data(COMPLETE, id=job_id, metrics=keys("final", 100)))[
        "completeTrainingJob"
    ]
    assert_over_limit(refused, FILL + 200, FILL + 300, MAX_KEYS_PER_JOB)
    job = (await gql.data(JOB, id=job_id))["trainingJob"]
    assert job["status"] == "RUNNING" and job["completedDate"] is None
    assert len(job["metrics"]) == FILL + 200
    assert await storage.events.head() == head
    done = (await gql.data(COMPLETE, id=job_id, metrics=keys("final", 56)))["completeTrainingJob"]
    assert done["status"] == "COMPLETED" and len(done["metrics"]) == MAX_KEYS_PER_JOB


@pytest.mark.parametrize(("first", "second"), SPLITS)
async def test_model_version_metrics_hold_the_cap_across_updates(
    gql: GraphQLClient, storage: MongoStorage, first: int, second: int
) -> None:
    model = await register(gql, metrics=keys("a", first))
    head = await storage.events.head()
    refused = (
        await gql.data(UPDATE_MODEL_METRICS, id=model["modelId"], metrics=keys("b", second))
    )["updateModelVersionMetrics"]
    assert_over_limit(refused, first, first + second)
    assert await model_metrics(gql, model["modelId"]) == keys("a", first)
    assert await storage.events.head() == head


async def test_model_version_in_testing_holds_the_cap_too(gql: GraphQLClient) -> None:
    model = await register(gql)
    await gql.data(PROMOTE, id=model["modelId"], to="TESTING")
    for batch in range(2):
        ok = (
            await gql.data(
                UPDATE_MODEL_METRICS, id=model["modelId"], metrics=keys(f"{batch}_", 128)
            )
        )["updateModelVersionMetrics"]
        assert ok["__typename"] == "ModelVersion"
    refused = (await gql.data(UPDATE_MODEL_METRICS, id=model["modelId"], metrics={"x": 1.0}))[
        "updateModelVersionMetrics"
    ]
    assert_over_limit(refused, 256, 257)


@pytest.mark.parametrize(("calls", "per_call"), [(5, 100), (8, 60), (20, 20), (4, 256)])
async def test_concurrent_reports_never_exceed_the_cap_together(
    gql: GraphQLClient, calls: int, per_call: int
) -> None:
    job_id = await running_job(gql)
    results = await asyncio.gather(
        *(gql.data(REPORT, id=job_id, metrics=keys(f"w{n}_", per_call)) for n in range(calls))
    )
    kinds = [r["reportTrainingMetrics"]["__typename"] for r in results]
    stored = await job_metrics(gql, job_id)
    fits = MAX_METRICS // per_call
    assert kinds.count("TrainingJob") == fits, kinds
    assert kinds.count("ValidationError") == calls - fits
    assert len(stored) == FILL + fits * per_call <= MAX_KEYS_PER_JOB


async def test_concurrent_model_metric_updates_never_exceed_the_cap_together(
    gql: GraphQLClient,
) -> None:
    model = await register(gql)
    results = await asyncio.gather(
        *(
            gql.data(UPDATE_MODEL_METRICS, id=model["modelId"], metrics=keys(f"w{n}_", 100))
            for n in range(6)
        )
    )
    kinds = [r["updateModelVersionMetrics"]["__typename"] for r in results]
    assert kinds.count("ModelVersion") == 2 and kinds.count("ValidationError") == 4
    assert len(await model_metrics(gql, model["modelId"])) == 200


class InterleavingCollection:
    """A collection whose first read is followed, before the caller resumes, by another
    writer's change: the interleaving two concurrent merges can have on any server."""

    def __init__(self, real: Any, other_writer: Any) -> None:
        self._real = real
        self._other_writer = other_writer
        self.interleaved = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        doc = await self._real.find_one(*args, **kwargs)
        if not self.interleaved:
            self.interleaved = True
            await self._other_writer()
        return doc


@pytest.mark.parametrize("guarded", [False, True], ids=["plain", "claim-guard"])
@pytest.mark.parametrize("store_name", ["training_jobs", "model_versions"])
async def test_a_merge_checked_on_a_stale_read_is_checked_again(
    storage: MongoStorage, guarded: bool, store_name: str
) -> None:
    from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
    from graphql_api.domain.models import ModelVersion, TrainingJob
    from graphql_api.domain.updates import MetricsMerge
    from graphql_api.domain.values import utc_now
    from graphql_api.storage.base import MergeLimitExceeded

    storage.guard.enabled = guarded
    if store_name == "training_jobs":
        store: Any = storage.training_jobs
        await store.insert(
            TrainingJob(
                job_id="j",
                model_id="m",
                dataset_id="d",
                status=TrainingStatus.RUNNING,
                metrics=keys("a", 100),
            )
        )

        async def merge(metrics: dict[str, float]) -> Any:
            return await store.update(
                "j", {TrainingStatus.RUNNING}, [MetricsMerge(metrics=metrics)]
            )
    else:
        store = storage.model_versions
        await store.insert(
            ModelVersion(
                model_id="j",
                model_name="n",
                version="1.0.0",
                model_type=ModelType.REGRESSION,
                metrics=keys("a", 100),
                created_date=utc_now(),
            )
        )

        async def merge(metrics: dict[str, float]) -> Any:
            return await store.update(
                "j", {ModelStatus.DEVELOPMENT}, [MetricsMerge(metrics=metrics)]
            )

    async def other_writer() -> None:
        await merge(keys("other", 100))  # 200 stored: fits

    store._c = InterleavingCollection(store._c, other_writer)
    # Checked on the stale read (100 stored + 100 = 200, fits), it must not land: with the
    # other writer's 100 it would make 300.
    with pytest.raises(MergeLimitExceeded) as refused:
        await merge(keys("mine", 100))
    assert (refused.value.stored, refused.value.merged) == (200, 300)
    assert store._c.interleaved
    stored = await store.get("j")
    assert stored.metrics == {**keys("a", 100), **keys("other", 100)}
