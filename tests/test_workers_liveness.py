"""Liveness (issue 15 item 3) on every backend: a lapsed lease makes a job LATE, a heartbeat
brings it back, a LATE job past the grace fails with HEARTBEAT_LOST and its worker's token is
refused; one instance sweeps at a time (a leader lease), another takes over when it dies.

Focused tests call the sweep with the time it runs at; one test lets the server's own sweep run
with short intervals and waits for the outcome."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.services.container import Services
from graphql_api.services.liveness import LivenessSweep
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.live_servers import eventually
from tests.operations import (
    CLAIM,
    CREATE_JOB,
    FENCED_COMPLETE,
    FENCED_REPORT,
    HEARTBEAT,
    REGISTER,
    START_LEASED,
)

READ = """
query($id: ID!) { trainingJob(jobId: $id) {
  status health workerId failureReason completedDate leaseExpiresAt
  failure { kind message }
  history(first: 50) { edges { node { kind previousStatus status actor } } }
} }"""
GRACE = 10.0


async def read(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = (await gql.data(READ, id=job_id))["trainingJob"]
    return job


def kinds(job: dict[str, Any]) -> list[str]:
    return [edge["node"]["kind"] for edge in job["history"]["edges"]]


async def claimed(gql: GraphQLClient, lease_seconds: int = 1) -> tuple[str, str, datetime]:
    """A job claimed by worker w-1: its id, its lease token and when the lease expires."""
    model = await gql.data(
        REGISTER,
        input={
            "modelName": f"m-{uuid.uuid4().hex[:8]}",
            "version": "1.0.0",
            "modelType": "REGRESSION",
        },
    )
    queue = f"q-{uuid.uuid4().hex[:8]}"
    await gql.data(
        CREATE_JOB,
        input={
            "modelId": model["registerModelVersion"]["modelId"],
            "datasetId": "d",
            "queue": queue,
        },
    )
    job = (await gql.data(CLAIM, queue=queue, worker="w-1", leaseSeconds=lease_seconds))[
        "claimTrainingJob"
    ]
    return job["jobId"], job["leaseToken"], datetime.fromisoformat(job["leaseExpiresAt"])


@pytest.fixture
def sweep(storage: MongoStorage) -> LivenessSweep:
    return LivenessSweep(
        Services.over(storage).training, storage.leaders, interval=1.0, grace=GRACE
    )


async def test_a_lapsed_lease_makes_the_job_late_and_a_heartbeat_brings_it_back(
    gql: GraphQLClient, sweep: LivenessSweep
) -> None:
    job_id, token, expires = await claimed(gql)
    assert (await sweep.sweep_once(expires - timedelta(seconds=0.5))).late == []
    assert (await read(gql, job_id))["health"] == "HEALTHY"

    result = await sweep.sweep_once(expires + timedelta(seconds=1))
    assert (result.late, result.lost) == ([job_id], [])
    late = await read(gql, job_id)
    assert (late["status"], late["health"]) == ("RUNNING", "LATE")
    assert kinds(late) == ["CREATED", "CLAIMED", "LATE"]
    assert late["history"]["edges"][-1]["node"]["actor"] == "system:liveness-sweep"
    # Sweeping again changes nothing more.
    assert (await sweep.sweep_once(expires + timedelta(seconds=2))).late == []

    beat = (await gql.data(HEARTBEAT, id=job_id, token=token))["heartbeatTrainingJob"]
    assert beat["__typename"] == "TrainingJob"
    back = await read(gql, job_id)
    assert (back["status"], back["health"]) == ("RUNNING", "HEALTHY")
    assert kinds(back) == ["CREATED", "CLAIMED", "LATE", "RECOVERED"]
    await gql.data(HEARTBEAT, id=job_id, token=token)
    assert kinds(await read(gql, job_id)) == kinds(back)  # a healthy heartbeat: no event


async def test_late_past_the_grace_fails_with_heartbeat_lost_and_the_token_is_refused(
    gql: GraphQLClient, sweep: LivenessSweep
) -> None:
    job_id, token, expires = await claimed(gql)
    await sweep.sweep_once(expires + timedelta(seconds=1))
    # Within the grace: still LATE, the worker may come back.
    assert (await sweep.sweep_once(expires + timedelta(seconds=GRACE - 1))).lost == []
    assert (await read(gql, job_id))["status"] == "RUNNING"

    result = await sweep.sweep_once(expires + timedelta(seconds=GRACE + 1))
    assert result.lost == [job_id]
    lost = await read(gql, job_id)
    assert (lost["status"], lost["health"]) == ("FAILED", "LOST")
    assert lost["failure"]["kind"] == "HEARTBEAT_LOST"
    assert lost["failure"]["message"] == lost["failureReason"]
    assert "w-1" in lost["failureReason"] and lost["completedDate"]
    assert kinds(lost) == ["CREATED", "CLAIMED", "LATE", "LOST"]
    assert lost["history"]["edges"][-1]["node"]["previousStatus"] == "RUNNING"

    # The worker that comes back too late has lost the job: every write is refused.
    writes: list[tuple[str, str, dict[str, Any]]] = [
        (HEARTBEAT, "heartbeatTrainingJob", {}),
        (FENCED_REPORT, "reportTrainingMetrics", {"metrics": {"loss": 1.0}}),
        (FENCED_COMPLETE, "completeTrainingJob", {"metrics": None}),
    ]
    for document, field, args in writes:
        refused = (await gql.data(document, id=job_id, token=token, **args))[field]
        assert refused["__typename"] == "LeaseLostError", (field, refused)
    assert await read(gql, job_id) == lost


async def test_a_job_whose_worker_heartbeats_is_never_late(
    gql: GraphQLClient, sweep: LivenessSweep
) -> None:
    job_id, token, expires = await claimed(gql, lease_seconds=5)
    beat = (await gql.data(HEARTBEAT, id=job_id, token=token))["heartbeatTrainingJob"]
    renewed = datetime.fromisoformat(beat["leaseExpiresAt"])
    assert renewed >= expires
    assert (await sweep.sweep_once(renewed - timedelta(seconds=0.1))).late == []
    assert (await read(gql, job_id))["health"] == "HEALTHY"


async def test_jobs_started_without_a_worker_are_not_swept(
    gql: GraphQLClient, sweep: LivenessSweep
) -> None:
    # Clients from before leases start jobs and never heartbeat: they must keep working.
    model = await gql.data(
        REGISTER, input={"modelName": "legacy", "version": "1.0.0", "modelType": "REGRESSION"}
    )
    job = await gql.data(
        CREATE_JOB,
        input={"modelId": model["registerModelVersion"]["modelId"], "datasetId": "d"},
    )
    job_id = job["createTrainingJob"]["jobId"]
    await gql.data(START_LEASED, id=job_id)
    far = datetime.fromisoformat((await read(gql, job_id))["leaseExpiresAt"])
    result = await sweep.sweep_once(far + timedelta(days=1))
    assert (result.late, result.lost) == ([], [])
    assert (await read(gql, job_id))["health"] == "HEALTHY"


async def test_one_instance_leads_the_sweep_and_another_takes_over_when_it_dies(
    storage: MongoStorage,
) -> None:
    training = Services.over(storage).training

    def instance(name: str) -> LivenessSweep:
        return LivenessSweep(training, storage.leaders, interval=2.0, grace=GRACE, instance=name)

    first, second = instance("a"), instance("b")
    now = datetime.now().astimezone()
    assert await first.lead(now)
    assert not await second.lead(now + timedelta(seconds=1))
    assert await first.lead(now + timedelta(seconds=2))  # renewed: good until now + 8 s
    assert not await second.lead(now + timedelta(seconds=7))
    # The leader stops renewing (it died): past its lease the other takes over, and the old
    # leader, were it to come back, no longer leads.
    assert await second.lead(now + timedelta(seconds=9))
    assert not await first.lead(now + timedelta(seconds=10))
    # A clean shutdown hands over at once.
    await storage.leaders.release("liveness-sweep", "b")
    assert await first.lead(now + timedelta(seconds=10))


async def test_racing_instances_elect_exactly_one_leader(storage: MongoStorage) -> None:
    now = datetime.now().astimezone()
    until = now + timedelta(seconds=30)
    for round_ in range(3):
        name = f"lease-{round_}"
        won = await asyncio.gather(
            *(storage.leaders.acquire(name, f"i-{n}", now, until) for n in range(8))
        )
        assert won.count(True) == 1, won
        # An expired lease: again exactly one of the racers takes it over.
        later = until + timedelta(seconds=1)
        won = await asyncio.gather(
            *(
                storage.leaders.acquire(name, f"j-{n}", later, later + timedelta(seconds=30))
                for n in range(8)
            )
        )
        assert won.count(True) == 1, won


@pytest.fixture
async def swept(storage: MongoStorage) -> AsyncIterator[GraphQLClient]:
    """The app with its own sweep running every 50 ms and a grace of 0.2 s."""
    app = create_app(Settings(sweep_interval=0.05, heartbeat_grace=0.2), storage=storage)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield GraphQLClient(http)


async def test_the_servers_sweep_fails_a_job_whose_worker_died(swept: GraphQLClient) -> None:
    gql = swept
    job_id, _, _ = await claimed(gql, lease_seconds=1)

    # The worker dies at once (no heartbeat): wait for the outcome, bounded.
    async def ended() -> bool:
        return bool((await read(gql, job_id))["status"] != "RUNNING")

    await eventually(ended, within=30, what="the sweep to fail the job")
    job = await read(gql, job_id)
    assert (job["status"], job["health"], job["failure"]["kind"]) == (
        "FAILED",
        "LOST",
        "HEARTBEAT_LOST",
    )

    # The LOST event travels in the job's own write and reaches the log when the sweep relays
    # it, just after: wait for it rather than read the history at the instant of the change.
    async def lost_logged() -> bool:
        return kinds(await read(gql, job_id)) == ["CREATED", "CLAIMED", "LATE", "LOST"]

    await eventually(lost_logged, within=10, what="the LOST event in the job's history")


async def test_a_job_running_past_its_max_runtime_fails_with_timed_out(
    gql: GraphQLClient, sweep: LivenessSweep
) -> None:
    model = await gql.data(
        REGISTER, input={"modelName": "capped", "version": "1.0.0", "modelType": "REGRESSION"}
    )
    created = await gql.data(
        CREATE_JOB,
        input={
            "modelId": model["registerModelVersion"]["modelId"],
            "datasetId": "d",
            "queue": "capped",
            "maxRuntimeSeconds": 300,
        },
    )
    job_id = created["createTrainingJob"]["jobId"]
    job = (await gql.data(CLAIM, queue="capped", worker="w-1", leaseSeconds=3600))[
        "claimTrainingJob"
    ]
    started = datetime.fromisoformat(job["startedDate"])
    assert (await sweep.sweep_once(started + timedelta(seconds=299))).timed_out == []
    assert (await read(gql, job_id))["status"] == "RUNNING"

    result = await sweep.sweep_once(started + timedelta(seconds=301))
    assert result.timed_out == [job_id] and result.late == []
    failed = await read(gql, job_id)
    assert (failed["status"], failed["failure"]["kind"]) == ("FAILED", "TIMED_OUT")
    assert "300" in failed["failure"]["message"]
    assert kinds(failed) == ["CREATED", "CLAIMED", "TIMED_OUT"]
    beat = (await gql.data(HEARTBEAT, id=job_id, token=job["leaseToken"]))["heartbeatTrainingJob"]
    assert beat["__typename"] == "LeaseLostError"
    assert (await sweep.sweep_once(started + timedelta(seconds=400))).timed_out == []


@pytest.mark.parametrize(("value", "rule"), [(0, "min"), (-1, "min"), (30 * 86400 + 1, "max")])
async def test_a_bad_max_runtime_is_a_validation_error(
    gql: GraphQLClient, value: int, rule: str
) -> None:
    model = await gql.data(
        REGISTER, input={"modelName": "capped", "version": "1.0.0", "modelType": "REGRESSION"}
    )
    created = await gql.data(
        CREATE_JOB,
        input={
            "modelId": model["registerModelVersion"]["modelId"],
            "datasetId": "d",
            "maxRuntimeSeconds": value,
        },
    )
    error = created["createTrainingJob"]
    assert (error["__typename"], error["field"], error["rule"]) == (
        "ValidationError",
        "maxRuntimeSeconds",
        rule,
    )
    total = await gql.data("{ trainingJobs { totalCount } }")
    assert total["trainingJobs"]["totalCount"] == 0
