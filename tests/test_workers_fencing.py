"""Heartbeats and fencing (issue 15 item 2), through the API on every backend: a worker's writes
carry its lease token; a token that is not the job's lease gets LeaseLostError and changes
nothing; clients that start jobs without a workerId keep working without a token."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import GraphQLClient
from tests.operations import (
    CANCEL,
    CLAIM,
    CREATE_JOB,
    FENCED_COMPLETE,
    FENCED_FAIL,
    FENCED_REPORT,
    HEARTBEAT,
    REGISTER,
    START_LEASED,
)

READ = """
query($id: ID!) { trainingJob(jobId: $id) {
  status metrics failureReason workerId leaseExpiresAt lastHeartbeatAt completedDate
  history(first: 50) { edges { node { kind } } }
} }"""


async def read(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = (await gql.data(READ, id=job_id))["trainingJob"]
    return job


async def new_job(gql: GraphQLClient, queue: str | None = None) -> str:
    model = await gql.data(
        REGISTER,
        input={
            "modelName": f"m-{uuid.uuid4().hex[:8]}",
            "version": "1.0.0",
            "modelType": "REGRESSION",
        },
    )
    queue = queue or f"q-{uuid.uuid4().hex[:8]}"
    created = await gql.data(
        CREATE_JOB,
        input={
            "modelId": model["registerModelVersion"]["modelId"],
            "datasetId": "d",
            "queue": queue,
        },
    )
    return str(created["createTrainingJob"]["jobId"])


async def claimed_job(gql: GraphQLClient, lease_seconds: int = 30) -> tuple[str, str]:
    """A job claimed by worker w-1: its id and lease token."""
    job_id = await new_job(gql, queue=f"q-{uuid.uuid4().hex[:8]}")
    queue = (await gql.data("query($id: ID!) { trainingJob(jobId: $id) { queue } }", id=job_id))[
        "trainingJob"
    ]["queue"]
    claimed = (await gql.data(CLAIM, queue=queue, worker="w-1", leaseSeconds=lease_seconds))[
        "claimTrainingJob"
    ]
    assert claimed["jobId"] == job_id
    return job_id, str(claimed["leaseToken"])


#: Each write a worker makes under its lease, with what makes it succeed.
WRITES: dict[str, tuple[str, dict[str, Any]]] = {
    "reportTrainingMetrics": (FENCED_REPORT, {"metrics": {"loss": 0.5}}),
    "completeTrainingJob": (FENCED_COMPLETE, {"metrics": {"loss": 0.1}}),
    "failTrainingJob": (FENCED_FAIL, {"reason": "CUDA out of memory"}),
    "heartbeatTrainingJob": (HEARTBEAT, {}),
}


def not_the_token(token: str) -> list[str | None]:
    """Tokens that are not the lease: none, empty, one character changed, cut, padded."""
    flipped = ("A" if token[0] != "A" else "B") + token[1:]
    return [None, "", flipped, token[:-1], token + "x", token.upper()]


async def write(gql: GraphQLClient, field: str, job_id: str, token: str | None) -> dict[str, Any]:
    document, args = WRITES[field]
    if field == "heartbeatTrainingJob" and token is None:
        # The heartbeat's token is a required argument: omitting it is a GraphQL error.
        response = await gql.execute(document, id=job_id, token=None)
        assert response.get("errors"), response
        return {"__typename": "LeaseLostError", "jobId": job_id, "code": "LEASE_LOST"}
    result: dict[str, Any] = (await gql.data(document, id=job_id, token=token, **args))[field]
    return result


@pytest.mark.parametrize("field", list(WRITES))
async def test_a_claimed_jobs_writes_need_its_token_and_others_change_nothing(
    gql: GraphQLClient, field: str
) -> None:
    job_id, token = await claimed_job(gql)
    before = await read(gql, job_id)
    for other in not_the_token(token):
        refused = await write(gql, field, job_id, other)
        assert refused["__typename"] == "LeaseLostError", (other, refused)
        assert (refused["code"], refused["jobId"]) == ("LEASE_LOST", job_id)
        assert await read(gql, job_id) == before, other
    # A token of another job is not this job's either.
    _, foreign = await claimed_job(gql)
    assert (await write(gql, field, job_id, foreign))["__typename"] == "LeaseLostError"
    assert await read(gql, job_id) == before

    done = await write(gql, field, job_id, token)
    assert done["__typename"] == "TrainingJob", done


async def test_a_write_after_the_lease_ended_is_refused_by_status(gql: GraphQLClient) -> None:
    job_id, token = await claimed_job(gql)
    assert (await write(gql, "completeTrainingJob", job_id, token))["status"] == "COMPLETED"
    for field in WRITES:
        again = await write(gql, field, job_id, token)
        assert again["__typename"] == "InvalidTransitionError", (field, again)
        assert again["currentStatus"] == "COMPLETED"
        assert (await write(gql, field, job_id, "stale"))["__typename"] == "LeaseLostError"


async def test_a_heartbeat_extends_the_lease_by_its_length_and_records_no_event(
    gql: GraphQLClient,
) -> None:
    job_id, token = await claimed_job(gql, lease_seconds=45)
    claimed = await read(gql, job_id)
    beats = []
    for _ in range(3):
        beat = await write(gql, "heartbeatTrainingJob", job_id, token)
        assert beat["__typename"] == "TrainingJob" and beat["status"] == "RUNNING"
        beats.append(datetime.fromisoformat(beat["lastHeartbeatAt"]))
        expires = datetime.fromisoformat(beat["leaseExpiresAt"])
        assert expires == beats[-1] + timedelta(seconds=45)
    assert datetime.fromisoformat(claimed["lastHeartbeatAt"]) <= beats[0] <= beats[1] <= beats[2]
    after = await read(gql, job_id)
    assert after["history"] == claimed["history"]  # CREATED, CLAIMED: heartbeats are no events


async def test_a_cancelled_job_answers_its_workers_heartbeat_with_its_status(
    gql: GraphQLClient,
) -> None:
    job_id, token = await claimed_job(gql)
    await gql.data(CANCEL, id=job_id)
    beat = await write(gql, "heartbeatTrainingJob", job_id, token)
    assert beat["__typename"] == "InvalidTransitionError"
    assert beat["currentStatus"] == "CANCELLED"


@pytest.mark.parametrize(
    "field", ["reportTrainingMetrics", "completeTrainingJob", "failTrainingJob"]
)
async def test_jobs_started_without_a_worker_id_keep_working_without_a_token(
    gql: GraphQLClient, field: str
) -> None:
    job_id = await new_job(gql)
    started = (await gql.data(START_LEASED, id=job_id))["startTrainingJob"]
    assert started["status"] == "RUNNING" and started["workerId"] is None
    token = started["leaseToken"]
    assert token
    # A token is still checked when one is given.
    assert (await write(gql, field, job_id, token + "x"))["__typename"] == "LeaseLostError"
    assert (await write(gql, field, job_id, None))["__typename"] == "TrainingJob"


async def test_a_start_with_a_worker_id_holds_the_job_like_a_claim(gql: GraphQLClient) -> None:
    job_id = await new_job(gql)
    started = (await gql.data(START_LEASED, id=job_id, worker="w-9", leaseSeconds=5))[
        "startTrainingJob"
    ]
    assert started["workerId"] == "w-9"
    assert datetime.fromisoformat(started["leaseExpiresAt"]) == datetime.fromisoformat(
        started["startedDate"]
    ) + timedelta(seconds=5)
    assert (await write(gql, "reportTrainingMetrics", job_id, None))["__typename"] == (
        "LeaseLostError"
    )
    token = started["leaseToken"]
    assert (await write(gql, "reportTrainingMetrics", job_id, token))["metrics"] == {"loss": 0.5}


async def test_a_token_for_a_job_never_claimed_is_refused_without_saying_it_was_taken(
    gql: GraphQLClient,
) -> None:
    """A PENDING job no worker ever held: the refusal says so and how to get a lease, instead
    of "the job was taken from this worker" (a worker with a wrong id or a made-up token would
    otherwise look for who took it)."""
    job_id = await new_job(gql)
    refused = (await gql.data(HEARTBEAT, id=job_id, token="made-up-token"))["heartbeatTrainingJob"]
    assert refused["__typename"] == "LeaseLostError", refused
    assert "never claimed" in refused["message"] and "claimTrainingJob" in refused["message"]
    assert "taken from this worker" not in refused["message"]
    # A job that was claimed keeps the usual words for a token that is not its lease.
    claimed_id, _ = await claimed_job(gql)
    lost = (await gql.data(HEARTBEAT, id=claimed_id, token="made-up-token"))["heartbeatTrainingJob"]
    assert "taken from this worker" in lost["message"], lost
