"""Graceful cancel (issue 15 item 6) on every backend: a PENDING job is cancelled at once; a
RUNNING one is asked to stop (cancelRequestedAt, CANCEL_REQUESTED), its worker sees it in the
heartbeat answer and acknowledges, or the sweep cancels it when the grace runs out."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from graphql_api.services.container import Services
from graphql_api.services.liveness import LivenessSweep
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import (
    ACKNOWLEDGE_CANCEL,
    CANCEL_GRACEFULLY,
    CLAIM,
    CREATE_JOB,
    FENCED_REPORT,
    REGISTER,
)

BEAT = """
mutation($id: ID!, $token: String!) { heartbeatTrainingJob(jobId: $id, leaseToken: $token) {
  __typename ... on TrainingJob { status cancelRequestedAt } } }"""
READ = """
query($id: ID!) { trainingJob(jobId: $id) { status cancelRequestedAt completedDate
  history(first: 20) { edges { node { kind previousStatus status } } } } }"""


async def read(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = (await gql.data(READ, id=job_id))["trainingJob"]
    return job


def kinds(job: dict[str, Any]) -> list[str]:
    return [e["node"]["kind"] for e in job["history"]["edges"]]


async def new_job(gql: GraphQLClient) -> tuple[str, str]:
    model = await gql.data(
        REGISTER,
        input={
            "modelName": f"m-{uuid.uuid4().hex[:8]}",
            "version": "1.0.0",
            "modelType": "REGRESSION",
        },
    )
    queue = f"q-{uuid.uuid4().hex[:8]}"
    created = await gql.data(
        CREATE_JOB,
        input={
            "modelId": model["registerModelVersion"]["modelId"],
            "datasetId": "d",
            "queue": queue,
        },
    )
    return created["createTrainingJob"]["jobId"], queue


async def running(gql: GraphQLClient) -> tuple[str, str]:
    job_id, queue = await new_job(gql)
    job = (await gql.data(CLAIM, queue=queue, worker="w-1", leaseSeconds=600))["claimTrainingJob"]
    return job_id, job["leaseToken"]


@pytest.fixture
def sweep(storage: MongoStorage) -> LivenessSweep:
    return LivenessSweep(Services.over(storage).training, storage.leaders, interval=1, grace=5)


async def test_a_pending_job_is_cancelled_at_once(gql: GraphQLClient) -> None:
    job_id, _ = await new_job(gql)
    done = (await gql.data(CANCEL_GRACEFULLY, id=job_id, grace=60))["cancelTrainingJob"]
    assert done["status"] == "CANCELLED" and done["cancelRequestedAt"] is None


async def test_the_worker_sees_the_request_and_acknowledges_it(gql: GraphQLClient) -> None:
    job_id, token = await running(gql)
    asked = (await gql.data(CANCEL_GRACEFULLY, id=job_id, grace=60))["cancelTrainingJob"]
    assert asked["status"] == "RUNNING" and asked["cancelRequestedAt"]
    # Asking again keeps the first request.
    again = (await gql.data(CANCEL_GRACEFULLY, id=job_id, grace=1))["cancelTrainingJob"]
    assert again["cancelRequestedAt"] == asked["cancelRequestedAt"]
    beat = (await gql.data(BEAT, id=job_id, token=token))["heartbeatTrainingJob"]
    assert beat["cancelRequestedAt"] == asked["cancelRequestedAt"]
    # The worker saves its checkpoint (a last report), then acknowledges under its lease.
    report = await gql.data(FENCED_REPORT, id=job_id, token=token, metrics={"step": 10})
    assert report["reportTrainingMetrics"]["status"] == "RUNNING"
    stale = await gql.data(ACKNOWLEDGE_CANCEL, id=job_id, token="nope")
    assert stale["acknowledgeTrainingJobCancel"]["__typename"] == "LeaseLostError"
    done = (await gql.data(ACKNOWLEDGE_CANCEL, id=job_id, token=token))[
        "acknowledgeTrainingJobCancel"
    ]
    assert done["status"] == "CANCELLED"
    job = await read(gql, job_id)
    assert kinds(job) == [
        "CREATED",
        "CLAIMED",
        "CANCEL_REQUESTED",
        "METRICS_REPORTED",
        "CANCEL_ACKNOWLEDGED",
    ]
    assert job["completedDate"]


async def test_an_acknowledgement_without_a_request_is_refused(gql: GraphQLClient) -> None:
    job_id, token = await running(gql)
    refused = (await gql.data(ACKNOWLEDGE_CANCEL, id=job_id, token=token))[
        "acknowledgeTrainingJobCancel"
    ]
    assert (refused["__typename"], refused["currentStatus"]) == (
        "InvalidTransitionError",
        "RUNNING",
    )
    assert (await read(gql, job_id))["status"] == "RUNNING"


async def test_the_sweep_cancels_when_the_grace_runs_out(
    gql: GraphQLClient, sweep: LivenessSweep
) -> None:
    job_id, token = await running(gql)
    asked = (await gql.data(CANCEL_GRACEFULLY, id=job_id, grace=30))["cancelTrainingJob"]
    at = datetime.fromisoformat(asked["cancelRequestedAt"])
    assert (await sweep.sweep_once(at + timedelta(seconds=29))).cancelled == []
    assert (await sweep.sweep_once(at + timedelta(seconds=31))).cancelled == [job_id]
    job = await read(gql, job_id)
    assert job["status"] == "CANCELLED"
    assert kinds(job)[-2:] == ["CANCEL_REQUESTED", "CANCEL_FORCED"]
    late = await gql.data(ACKNOWLEDGE_CANCEL, id=job_id, token=token)
    assert late["acknowledgeTrainingJobCancel"]["__typename"] == "LeaseLostError"


async def test_cancel_without_grace_still_cancels_a_running_job_at_once(
    gql: GraphQLClient,
) -> None:
    job_id, _ = await running(gql)
    done = (await gql.data(CANCEL_GRACEFULLY, id=job_id, grace=None))["cancelTrainingJob"]
    assert done["status"] == "CANCELLED"


@pytest.mark.parametrize(("grace", "rule"), [(-1, "min"), (86401, "max")])
async def test_a_bad_grace_is_a_validation_error(gql: GraphQLClient, grace: int, rule: str) -> None:
    job_id, _ = await running(gql)
    error = (await gql.data(CANCEL_GRACEFULLY, id=job_id, grace=grace))["cancelTrainingJob"]
    assert (error["__typename"], error["field"], error["rule"]) == (
        "ValidationError",
        "graceSeconds",
        rule,
    )
    assert (await read(gql, job_id))["cancelRequestedAt"] is None
