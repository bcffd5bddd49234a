"""Training jobs over HTTP: every allowed transition, every refused one, progress reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.lifecycle import JOB_TRANSITIONS, Transition, path_to
from tests.api_helpers import create_job, read_job, register_id
from tests.conftest import GraphQLClient
from tests.operations import (
    CANCEL,
    CLAIM_DEFAULT_QUEUE,
    COMPLETE,
    FAIL,
    REPORT,
    SET_LOGS,
    START,
)


@pytest.fixture
async def model_id(gql: GraphQLClient) -> str:
    return await register_id(gql)


# The operation (with arguments) of each job mutation; the moves themselves come from the
# lifecycle table, so a new transition is tested here once its mutation is listed.
OPERATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "startTrainingJob": (START, {}),
    "completeTrainingJob": (COMPLETE, {"metrics": {"loss": 0.2}}),
    "failTrainingJob": (FAIL, {"reason": "OOM on GPU 0"}),
    "cancelTrainingJob": (CANCEL, {}),
    # A claim names a queue, not a job: each test's job is alone in the default queue.
    "claimTrainingJob": (CLAIM_DEFAULT_QUEUE, {}),
}
#: Moves a client asks for (the liveness sweep's own: test_workers_liveness.py), on the status
#: alone (acknowledging a cancel also needs one asked for: test_workers_cancel.py).
MOVES: list[Transition[TrainingStatus]] = [
    row
    for row in JOB_TRANSITIONS
    if row.moves and row.mutation not in (None, "acknowledgeTrainingJobCancel")
]


def row_to(target: TrainingStatus) -> Transition[TrainingStatus]:
    # The first row leading there, in table order (RUNNING: startTrainingJob, not a claim).
    return next(row for row in MOVES if row.target is target)


async def move(
    gql: GraphQLClient, job_id: str, step: TrainingStatus | Transition[TrainingStatus]
) -> dict[str, Any]:
    row = row_to(step) if isinstance(step, TrainingStatus) else step
    assert row.mutation is not None
    operation, args = OPERATIONS[row.mutation]
    result: dict[str, Any] = (await gql.data(operation, id=job_id, **args))[row.mutation]
    return result


async def test_create_makes_a_pending_job(gql: GraphQLClient, model_id: str) -> None:
    params = {"lr": 0.001, "optimizer": {"name": "adamw", "betas": [0.9, 0.999]}, "tags": None}
    job = await create_job(gql, model_id, hyperparameters=params, logsUrl="s3://logs/a")
    assert job["__typename"] == "TrainingJob"
    assert job["status"] == "PENDING"
    assert job["hyperparameters"] == params
    assert job["metrics"] == {} and job["logsUrl"] == "s3://logs/a"
    assert job["startedDate"] is None and job["completedDate"] is None
    assert await read_job(gql, job["jobId"]) == {k: v for k, v in job.items() if k != "__typename"}


async def test_create_needs_an_existing_model_version(gql: GraphQLClient) -> None:
    error = await create_job(gql, "no-such-model")
    assert error["__typename"] == "NotFoundError"
    assert (error["resource"], error["id"], error["field"]) == (
        "ModelVersion",
        "no-such-model",
        "modelId",
    )
    jobs = await gql.data("{ trainingJobs { totalCount } }")
    assert jobs["trainingJobs"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"hyperparameters": {"$where": "sleep(1000)"}}, "hyperparameters", "'$'"),
        ({"hyperparameters": {"a": {"b.c": 1}}}, "hyperparameters", "'.'"),
        ({"hyperparameters": "lr=0.1"}, "hyperparameters", "dictionary"),
        ({"datasetId": ""}, "datasetId", "at least 1"),
        ({"jobId": "../etc"}, "jobId", "pattern"),
    ],
)
async def test_bad_job_input_is_a_validation_error_and_writes_nothing(
    gql: GraphQLClient, model_id: str, fields: dict[str, Any], field: str, fragment: str
) -> None:
    error = await create_job(gql, model_id, **fields)
    assert error["__typename"] == "ValidationError"
    assert error["field"] == field and fragment in error["message"]
    jobs = await gql.data("{ trainingJobs { totalCount } }")
    assert jobs["trainingJobs"]["totalCount"] == 0


async def test_reusing_a_job_id_is_a_conflict(gql: GraphQLClient, model_id: str) -> None:
    await create_job(gql, model_id, jobId="nightly-42")
    again = await create_job(gql, model_id, jobId="nightly-42", datasetId="other")
    assert again["__typename"] == "ConflictError" and again["field"] == "jobId"
    assert (await read_job(gql, "nightly-42"))["datasetId"] == "churn-2026-11"


@pytest.mark.parametrize("current", list(TrainingStatus))
@pytest.mark.parametrize("row", MOVES, ids=lambda row: row.name)
async def test_every_transition_is_allowed_or_refused_per_the_lifecycle(
    gql: GraphQLClient, model_id: str, current: TrainingStatus, row: Transition[TrainingStatus]
) -> None:
    job = await create_job(gql, model_id)
    for step in path_to(JOB_TRANSITIONS, current):
        assert (await move(gql, job["jobId"], step))["status"] == step.target
    before = await read_job(gql, job["jobId"])
    result = await move(gql, job["jobId"], row)
    target = row.target
    if current in row.sources:
        assert result["__typename"] == "TrainingJob"
        assert result["status"] == target
    elif row.mutation == "claimTrainingJob":
        # The queue has no PENDING job: nothing to claim, and nothing changes.
        assert result is None
        assert await read_job(gql, job["jobId"]) == before
    else:
        assert result["__typename"] == "InvalidTransitionError"
        assert result["code"] == "INVALID_TRANSITION"
        assert (result["currentStatus"], result["requestedStatus"]) == (current, target)
        assert await read_job(gql, job["jobId"]) == before


async def test_timings_follow_the_lifecycle(gql: GraphQLClient, model_id: str) -> None:
    job = await create_job(gql, model_id)
    running = await move(gql, job["jobId"], TrainingStatus.RUNNING)
    assert running["startedDate"] is not None and running["completedDate"] is None
    done = await move(gql, job["jobId"], TrainingStatus.COMPLETED)
    assert done["startedDate"] == running["startedDate"]
    started = datetime.fromisoformat(done["startedDate"])
    assert (
        datetime.fromisoformat(done["completedDate"])
        >= started
        >= datetime.fromisoformat(job["createdDate"])
    )
    cancelled = await create_job(gql, model_id)
    ended = await move(gql, cancelled["jobId"], TrainingStatus.CANCELLED)
    assert ended["startedDate"] is None and ended["completedDate"] is not None


async def test_progress_metrics_merge_while_running(gql: GraphQLClient, model_id: str) -> None:
    job = await create_job(gql, model_id)
    refused = (await gql.data(REPORT, id=job["jobId"], metrics={"loss": 1.0}))[
        "reportTrainingMetrics"
    ]
    assert refused["__typename"] == "InvalidTransitionError"
    assert refused["currentStatus"] == "PENDING" and refused["requestedStatus"] is None
    await move(gql, job["jobId"], TrainingStatus.RUNNING)
    for metrics in ({"loss": 0.9, "epoch": 1}, {"loss": 0.5, "epoch": 2, "acc": 0.7}):
        reported = (await gql.data(REPORT, id=job["jobId"], metrics=metrics))[
            "reportTrainingMetrics"
        ]
        assert reported["status"] == "RUNNING"
    assert (await read_job(gql, job["jobId"]))["metrics"] == {"loss": 0.5, "epoch": 2.0, "acc": 0.7}
    nan = (await gql.data(REPORT, id=job["jobId"], metrics={"loss": "NaN"}))[
        "reportTrainingMetrics"
    ]
    assert nan["__typename"] == "ValidationError" and nan["field"] == "metrics.loss"
    done = await move(gql, job["jobId"], TrainingStatus.COMPLETED)
    assert done["metrics"] == {"loss": 0.2, "epoch": 2.0, "acc": 0.7}
    late = (await gql.data(REPORT, id=job["jobId"], metrics={"loss": 0.1}))["reportTrainingMetrics"]
    assert late["__typename"] == "InvalidTransitionError"
    assert (await read_job(gql, job["jobId"]))["metrics"]["loss"] == 0.2


async def test_failure_reason_is_required_and_kept(gql: GraphQLClient, model_id: str) -> None:
    job = await create_job(gql, model_id)
    await move(gql, job["jobId"], TrainingStatus.RUNNING)
    blank = (await gql.data(FAIL, id=job["jobId"], reason="   "))["failTrainingJob"]
    assert blank["__typename"] == "ValidationError" and blank["field"] == "reason"
    assert (await read_job(gql, job["jobId"]))["status"] == "RUNNING"
    failed = (await gql.data(FAIL, id=job["jobId"], reason="CUDA OOM"))["failTrainingJob"]
    assert (failed["status"], failed["failureReason"]) == ("FAILED", "CUDA OOM")


async def test_logs_url_can_be_set_in_any_status(gql: GraphQLClient, model_id: str) -> None:
    job = await create_job(gql, model_id)
    await move(gql, job["jobId"], TrainingStatus.CANCELLED)
    updated = (await gql.data(SET_LOGS, id=job["jobId"], url="gs://logs/run-1/"))[
        "setTrainingJobLogsUrl"
    ]
    assert updated["logsUrl"] == "gs://logs/run-1/" and updated["status"] == "CANCELLED"
    empty = (await gql.data(SET_LOGS, id=job["jobId"], url=" "))["setTrainingJobLogsUrl"]
    assert empty["__typename"] == "ValidationError" and empty["field"] == "logsUrl"
    long = (await gql.data(SET_LOGS, id=job["jobId"], url="s3://" + "x" * 3000))[
        "setTrainingJobLogsUrl"
    ]
    assert long["__typename"] == "ValidationError" and long["rule"] == "max_length"
    assert (await read_job(gql, job["jobId"]))["logsUrl"] == "gs://logs/run-1/"


@pytest.mark.parametrize(
    # A claim names no job (test_workers_claims.py covers an empty queue).
    "row",
    [row for row in MOVES if row.mutation != "claimTrainingJob"],
    ids=lambda row: row.name,
)
async def test_unknown_job_is_not_found(
    gql: GraphQLClient, row: Transition[TrainingStatus]
) -> None:
    error = await move(gql, "missing-job", row)
    assert error["__typename"] == "NotFoundError"
    assert (error["resource"], error["id"], error["field"]) == (
        "TrainingJob",
        "missing-job",
        "jobId",
    )


async def test_history_lists_each_change_in_order(gql: GraphQLClient, model_id: str) -> None:
    job = await create_job(gql, model_id)
    await move(gql, job["jobId"], TrainingStatus.RUNNING)
    await gql.data(REPORT, id=job["jobId"], metrics={"loss": 0.4})
    await move(gql, job["jobId"], TrainingStatus.CANCELLED)
    await move(gql, job["jobId"], TrainingStatus.COMPLETED)  # refused: leaves no trace
    data = await gql.data(
        "query($id: ID!) { trainingJob(jobId: $id) { "
        "history { edges { node { kind previousStatus status } } } } }",
        id=job["jobId"],
    )
    assert [e["node"] for e in data["trainingJob"]["history"]["edges"]] == [
        {"kind": "CREATED", "previousStatus": None, "status": "PENDING"},
        {"kind": "STARTED", "previousStatus": "PENDING", "status": "RUNNING"},
        {"kind": "METRICS_REPORTED", "previousStatus": "RUNNING", "status": "RUNNING"},
        {"kind": "CANCELLED", "previousStatus": "RUNNING", "status": "CANCELLED"},
    ]
