"""Typed failures and retries (issue 15 items 4 and 5) on every backend: failure { kind message
exitCode retryable }; a retry policy creates the next attempt after the backoff (the sweep);
retryTrainingJob does it by hand from any final status; attempts lists the chain."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from graphql_api.domain.values import utc_now
from graphql_api.services.container import Services
from graphql_api.services.liveness import LivenessSweep
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import (
    ACKNOWLEDGE_CANCEL,
    ARCHIVE,
    CANCEL,
    CLAIM,
    CREATE_JOB,
    FENCED_COMPLETE,
    FENCED_FAIL,
    FENCED_REPORT,
    HEARTBEAT,
    JOB,
    REGISTER,
    RETRY,
)

READ = """
query($id: ID!) { trainingJob(jobId: $id) {
  jobId status attempt retryOf hyperparameters queue failureReason
  failure { kind message exitCode retryable }
  retryPolicy { maxAttempts retryOn backoffSeconds }
  attempts { jobId attempt status retryOf }
  history(first: 20) { edges { node { kind actor } } }
} }"""
FAIL_WITH = """
mutation($id: ID!, $token: String, $kind: FailureKind!, $code: Int) {
  failTrainingJob(jobId: $id, leaseToken: $token, reason: "boom", kind: $kind, exitCode: $code) {
    __typename ... on TrainingJob { status failure { kind exitCode retryable } }
  }
}"""


async def read(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = (await gql.data(READ, id=job_id))["trainingJob"]
    return job


async def create(gql: GraphQLClient, **fields: Any) -> tuple[str, str]:
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
            "hyperparameters": {"lr": 0.1},
            **fields,
        },
    )
    return created["createTrainingJob"]["jobId"], queue


async def run_and_fail(
    gql: GraphQLClient, queue: str, kind: str, code: int | None = None
) -> dict[str, Any]:
    job = (await gql.data(CLAIM, queue=queue, worker="w-1"))["claimTrainingJob"]
    failed: dict[str, Any] = (
        await gql.data(FAIL_WITH, id=job["jobId"], token=job["leaseToken"], kind=kind, code=code)
    )["failTrainingJob"]
    return failed


@pytest.fixture
def sweep(storage: MongoStorage) -> LivenessSweep:
    return LivenessSweep(Services.over(storage).training, storage.leaders, interval=1, grace=5)


POLICY = {"maxAttempts": 3, "retryOn": ["PREEMPTED", "INFRASTRUCTURE"], "backoffSeconds": 30}


async def test_a_typed_failure_keeps_failure_reason_and_records_the_exit_code(
    gql: GraphQLClient,
) -> None:
    job_id, queue = await create(gql)
    failed = await run_and_fail(gql, queue, "OUT_OF_MEMORY", code=137)
    assert failed["failure"] == {"kind": "OUT_OF_MEMORY", "exitCode": 137, "retryable": False}
    job = await read(gql, job_id)
    assert job["failure"]["message"] == job["failureReason"] == "boom"
    assert job["retryPolicy"] is None and job["attempts"] == [
        {"jobId": job_id, "attempt": 1, "status": "FAILED", "retryOf": None}
    ]


async def test_a_listed_failure_is_retried_after_the_backoff_until_attempts_run_out(
    gql: GraphQLClient, sweep: LivenessSweep
) -> None:
    first, queue = await create(gql, retryPolicy=POLICY)
    assert (await read(gql, first))["retryPolicy"] == {
        "maxAttempts": 3,
        "retryOn": ["INFRASTRUCTURE", "PREEMPTED"],
        "backoffSeconds": 30.0,
    }
    failed = await run_and_fail(gql, queue, "PREEMPTED")
    assert failed["failure"]["retryable"] is True
    # Not before the backoff.
    assert (await sweep.sweep_once(utc_now() + timedelta(seconds=20))).retried == []
    result = await sweep.sweep_once(utc_now() + timedelta(seconds=31))
    assert result.retried == [first]
    chain = (await read(gql, first))["attempts"]
    assert [(a["attempt"], a["status"]) for a in chain] == [(1, "FAILED"), (2, "PENDING")]
    second = await read(gql, chain[1]["jobId"])
    assert (second["retryOf"], second["queue"]) == (first, queue)
    assert second["hyperparameters"] == {"lr": 0.1}
    assert second["retryPolicy"] == (await read(gql, first))["retryPolicy"]
    assert [e["node"]["kind"] for e in (await read(gql, first))["history"]["edges"]][-1] == (
        "RETRIED"
    )
    # Sweeping again creates nothing more.
    assert (await sweep.sweep_once(utc_now() + timedelta(seconds=60))).retried == []

    # The second attempt is claimed like any job, fails again: a third; the third is the last.
    await run_and_fail(gql, queue, "INFRASTRUCTURE")
    await sweep.sweep_once(utc_now() + timedelta(seconds=31))
    last = await run_and_fail(gql, queue, "PREEMPTED")
    assert last["failure"]["retryable"] is False
    await sweep.sweep_once(utc_now() + timedelta(seconds=31))
    chain = (await read(gql, first))["attempts"]
    assert [(a["attempt"], a["status"]) for a in chain] == [
        (1, "FAILED"),
        (2, "FAILED"),
        (3, "FAILED"),
    ]
    assert [a["retryOf"] for a in chain] == [None, chain[0]["jobId"], chain[1]["jobId"]]


async def test_an_unlisted_failure_is_not_retried(gql: GraphQLClient, sweep: LivenessSweep) -> None:
    first, queue = await create(gql, retryPolicy=POLICY)
    failed = await run_and_fail(gql, queue, "USER_CODE")
    assert failed["failure"]["retryable"] is False
    assert (await sweep.sweep_once(utc_now() + timedelta(days=1))).retried == []
    assert len((await read(gql, first))["attempts"]) == 1


@pytest.mark.parametrize("end", ["COMPLETED", "FAILED", "CANCELLED"])
async def test_a_job_that_ended_is_retried_by_hand_once_per_attempt(
    gql: GraphQLClient, end: str
) -> None:
    first, queue = await create(gql)
    if end == "CANCELLED":
        await gql.data(CANCEL, id=first)
    else:
        job = (await gql.data(CLAIM, queue=queue, worker="w-1"))["claimTrainingJob"]
        if end == "FAILED":
            await gql.data(FENCED_FAIL, id=first, token=job["leaseToken"], reason="x")
        else:
            await gql.data(
                "mutation($id: ID!, $t: String) { completeTrainingJob(jobId: $id, leaseToken: $t)"
                " { __typename } }",
                id=first,
                t=job["leaseToken"],
            )
    retried = (await gql.data(RETRY, id=first, hyperparameters={"lr": 0.01}))["retryTrainingJob"]
    assert (retried["status"], retried["attempt"], retried["retryOf"]) == ("PENDING", 2, first)
    assert retried["hyperparameters"] == {"lr": 0.01} and retried["queue"] == queue
    again = (await gql.data(RETRY, id=first))["retryTrainingJob"]
    assert again["__typename"] == "ConflictError"
    # Retrying the retry once it ended continues the chain.
    await gql.data(CANCEL, id=retried["jobId"])
    third = (await gql.data(RETRY, id=retried["jobId"]))["retryTrainingJob"]
    assert third["attempt"] == 3 and third["hyperparameters"] == {"lr": 0.01}
    chain = (await read(gql, third["jobId"]))["attempts"]
    assert [a["attempt"] for a in chain] == [1, 2, 3]


async def test_a_job_that_has_not_ended_cannot_be_retried(gql: GraphQLClient) -> None:
    first, queue = await create(gql)
    pending = (await gql.data(RETRY, id=first))["retryTrainingJob"]
    assert (pending["__typename"], pending["currentStatus"]) == (
        "InvalidTransitionError",
        "PENDING",
    )
    await gql.data(CLAIM, queue=queue, worker="w-1")
    running = (await gql.data(RETRY, id=first))["retryTrainingJob"]
    assert running["currentStatus"] == "RUNNING"
    assert len((await read(gql, first))["attempts"]) == 1


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"maxAttempts": 0, "retryOn": []}, "retryPolicy.maxAttempts"),
        ({"maxAttempts": 21, "retryOn": []}, "retryPolicy.maxAttempts"),
        ({"maxAttempts": 2, "retryOn": [], "backoffSeconds": -1}, "retryPolicy.backoffSeconds"),
    ],
)
async def test_a_bad_retry_policy_is_a_validation_error(
    gql: GraphQLClient, policy: dict[str, Any], field: str
) -> None:
    model = await gql.data(
        REGISTER, input={"modelName": "p", "version": "1.0.0", "modelType": "REGRESSION"}
    )
    created = await gql.data(
        CREATE_JOB,
        input={
            "modelId": model["registerModelVersion"]["modelId"],
            "datasetId": "d",
            "retryPolicy": policy,
        },
    )
    error = created["createTrainingJob"]
    assert (error["__typename"], error["field"]) == ("ValidationError", field)


async def test_the_failed_attempts_token_writes_nothing_to_its_retry(
    gql: GraphQLClient, sweep: LivenessSweep
) -> None:
    """A worker that comes back after its attempt failed and was retried still holds the old
    token: on the next attempt (PENDING, then another worker's) every write of it is a
    LeaseLostError and changes nothing."""
    first, queue = await create(gql, retryPolicy={**POLICY, "backoffSeconds": 0})
    claimed = (await gql.data(CLAIM, queue=queue, worker="w-1"))["claimTrainingJob"]
    old = claimed["leaseToken"]
    await gql.data(FAIL_WITH, id=first, token=old, kind="PREEMPTED", code=None)
    await sweep.sweep_once(utc_now())
    retry = (await read(gql, first))["attempts"][-1]["jobId"]
    writes: dict[str, tuple[str, dict[str, Any]]] = {
        "heartbeatTrainingJob": (HEARTBEAT, {}),
        "reportTrainingMetrics": (FENCED_REPORT, {"metrics": {"loss": 1.0}}),
        "completeTrainingJob": (FENCED_COMPLETE, {"metrics": None}),
        "failTrainingJob": (FENCED_FAIL, {"reason": "late"}),
        "acknowledgeTrainingJobCancel": (ACKNOWLEDGE_CANCEL, {}),
    }
    for holder in (None, "w-2"):
        if holder is not None:
            taken = (await gql.data(CLAIM, queue=queue, worker=holder))["claimTrainingJob"]
            assert taken["jobId"] == retry
        before = await read(gql, retry)
        for field, (document, args) in writes.items():
            refused = (await gql.data(document, id=retry, token=old, **args))[field]
            assert refused["__typename"] == "LeaseLostError", (holder, field, refused)
        assert await read(gql, retry) == before


async def test_a_job_of_an_archived_version_is_not_retried_by_hand(gql: GraphQLClient) -> None:
    """An ARCHIVED version is retired for good: createTrainingJob refuses to train it, and so
    does a retry by hand (it would be a new job for it all the same)."""
    first, _ = await create(gql)
    await gql.data(CANCEL, id=first)
    model_id = (await gql.data(JOB, id=first))["trainingJob"]["modelId"]
    assert (await gql.data(ARCHIVE, id=model_id))["archiveModelVersion"]["status"] == "ARCHIVED"
    refused = (await gql.data(RETRY, id=first))["retryTrainingJob"]
    assert (refused["__typename"], refused["field"]) == ("ConflictError", "modelId"), refused
    assert "archived" in refused["message"]
    assert [a["attempt"] for a in (await read(gql, first))["attempts"]] == [1]


async def test_an_automatic_retry_is_not_made_once_the_version_is_archived(
    gql: GraphQLClient, sweep: LivenessSweep, storage: MongoStorage
) -> None:
    """A failure the policy retries, whose model version is archived before the backoff ends:
    the sweep makes no next attempt (as createTrainingJob and retryTrainingJob refuse one),
    clears its mark, and does not come back to it."""
    first, queue = await create(gql, retryPolicy=POLICY)
    assert (await run_and_fail(gql, queue, "PREEMPTED"))["failure"]["retryable"] is True
    model_id = (await gql.data(JOB, id=first))["trainingJob"]["modelId"]
    assert (await gql.data(ARCHIVE, id=model_id))["archiveModelVersion"]["status"] == "ARCHIVED"
    assert (await sweep.sweep_once(utc_now() + timedelta(seconds=31))).retried == []
    assert [a["attempt"] for a in (await read(gql, first))["attempts"]] == [1]
    assert (await storage.training_jobs.retries_due(utc_now() + timedelta(days=1), 10)) == []
    # Nothing pending in its queue: no worker trains the retired version.
    assert (await gql.data(CLAIM, queue=queue, worker="w-2"))["claimTrainingJob"] is None
