"""Concurrent changes of one record under the outbox: a record takes no change while its last
one's event is pending, so concurrent writers take turns; each change still lands once, with
its one event, in the order the record changed."""

from __future__ import annotations

import asyncio
import uuid

from tests.api_helpers import register_id as register
from tests.conftest import GraphQLClient
from tests.operations import CREATE_JOB, START
from tests.test_concurrency import racing

__all__ = ["racing"]  # the fixture, shared with the concurrency tests

REPORT = """mutation($id: ID!, $metrics: JSON!) { reportTrainingMetrics(jobId: $id,
  metrics: $metrics) { __typename ... on Error { code message } } }"""
HISTORY = """query($id: ID!) { trainingJob(jobId: $id) { metrics
  history(first: 100) { totalCount edges { node { kind previousStatus status } } } } }"""


async def test_twenty_concurrent_metric_reports_of_one_job_each_land_with_one_event(
    racing: GraphQLClient,
) -> None:
    model_id = await register(racing, f"1.0.{uuid.uuid4().int % 1000}")
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    await racing.data(CREATE_JOB, input={"modelId": model_id, "datasetId": "d", "jobId": job_id})
    await racing.data(START, id=job_id)
    results = await asyncio.gather(
        *(racing.data(REPORT, id=job_id, metrics={f"m{n}": float(n)}) for n in range(20))
    )
    assert all(r["reportTrainingMetrics"]["__typename"] == "TrainingJob" for r in results)
    job = (await racing.data(HISTORY, id=job_id))["trainingJob"]
    assert job["metrics"] == {f"m{n}": float(n) for n in range(20)}
    kinds = [e["node"]["kind"] for e in job["history"]["edges"]]
    assert kinds == ["CREATED", "STARTED", *["METRICS_REPORTED"] * 20]
