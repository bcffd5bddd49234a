"""The async client's run (issue 15 item 7, "sync and async"; README: "AsyncClient has the same
calls for asyncio code", which before this held for single calls but not for ``run``):
``async with client.run(job) as run`` logs steps that a task sends in the background, completes
on a clean exit, fails with the exception's kind, and sees and acknowledges a graceful cancel.
Through the app, both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from graphql_api.storage.mongo import MongoStorage
from mltrain import AsyncClient, AsyncRun
from tests.conftest import GraphQLClient
from tests.operations import CANCEL_GRACEFULLY, CREATE_JOB, REGISTER
from tests.test_workers_client import READ


@pytest.fixture
async def client(app: Any) -> AsyncIterator[AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient("http://localhost", worker_id="async-1", transport=transport) as c:
        yield c


async def create(gql: GraphQLClient, queue: str) -> str:
    model = await gql.data(
        REGISTER, input={"modelName": queue, "version": "1.0.0", "modelType": "REGRESSION"}
    )
    created = await gql.data(
        CREATE_JOB,
        input={"modelId": model["registerModelVersion"]["modelId"], "datasetId": "d",
               "queue": queue},
    )  # fmt: skip
    return str(created["createTrainingJob"]["jobId"])


async def read(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = (await gql.data(READ, id=job_id))["trainingJob"]
    return job


async def test_an_async_run_logs_in_the_background_and_completes(
    gql: GraphQLClient, client: AsyncClient
) -> None:
    job_id = await create(gql, "async-clean")
    job = await client.claim("async-clean", lease_seconds=3)
    assert job is not None and job.job_id == job_id
    async with client.run(job, flush_interval=0.01) as run:
        assert isinstance(run, AsyncRun)
        for step in range(100):
            run.log(step, loss=1 / (step + 1), acc=step / 100)
            if step == 50:  # the run's task sends while the block goes on
                for _ in range(3000):
                    if not run.unsent:
                        break
                    await asyncio.sleep(0.01)
                else:
                    pytest.fail("the run's task sent nothing in 30 s")
    done = await read(gql, job_id)
    assert done["status"] == "COMPLETED" and done["workerId"] == "async-1"
    assert done["metrics"] == {"loss": 0.01, "acc": 0.99}
    assert done["metricSeries"] == [
        {"key": key, "totalPoints": 100, "firstStep": 0, "lastStep": 99} for key in ("acc", "loss")
    ]


async def test_an_exception_fails_an_async_run_with_its_kind(
    gql: GraphQLClient, client: AsyncClient
) -> None:
    job_id = await create(gql, "async-oom")
    job = await client.claim("async-oom")
    assert job is not None
    with pytest.raises(MemoryError):
        async with client.run(job) as run:
            run.log(0, loss=2.0)
            raise MemoryError("CUDA out of memory")
    failed = await read(gql, job_id)
    assert failed["status"] == "FAILED"
    assert failed["failure"]["kind"] == "OUT_OF_MEMORY"
    assert failed["failure"]["message"] == "MemoryError: CUDA out of memory"
    # The point logged before the exception was stored all the same.
    assert failed["metricSeries"] == [
        {"key": "loss", "totalPoints": 1, "firstStep": 0, "lastStep": 0}
    ]


async def test_an_async_run_sees_and_acknowledges_a_graceful_cancel(
    gql: GraphQLClient, client: AsyncClient
) -> None:
    job_id = await create(gql, "async-cancel")
    job = await client.claim("async-cancel", lease_seconds=1)
    assert job is not None
    async with client.run(job, flush_interval=0.05) as run:
        await gql.data(CANCEL_GRACEFULLY, id=job_id, grace=60)
        step = 0
        while not run.cancel_requested:  # seen at the next heartbeat (a third of 1 s)
            run.log(step, loss=1.0)
            step += 1
            await asyncio.sleep(0.005)
            assert step < 100_000
    cancelled = await read(gql, job_id)
    assert cancelled["status"] == "CANCELLED"
    kinds = [edge["node"]["kind"] for edge in cancelled["history"]["edges"]]
    assert kinds[-1] == "CANCEL_ACKNOWLEDGED"
    # Every step logged before the cancel was seen is stored.
    assert cancelled["metricSeries"] == [
        {"key": "loss", "totalPoints": step, "firstStep": 0, "lastStep": step - 1}
    ]


async def test_points_refused_while_another_call_holds_the_job_are_kept_and_sent_again(
    gql: GraphQLClient, client: AsyncClient, storage: MongoStorage
) -> None:
    """A points call that finds the job receiving another call's points (a send the run cut
    short on leaving the ``with``, still going on the server) is answered CONFLICT, "retry".
    Its points stay pending and go with the next flush; before, they were dropped with a
    warning (seen in a full run on DocumentDB: 16 of a cancelled run's points lost)."""
    job_id = await create(gql, "async-busy")
    job = await client.claim("async-busy", lease_seconds=30)
    assert job is not None
    series = storage.metric_series
    held = await series._acquire(job_id, ["RUNNING"])  # another call, not finished
    assert held is not None
    async with client.run(job, flush_interval=3600) as run:
        for step in range(5):
            run.log(step, loss=1.0 / (step + 1))
        await run.flush()  # waits out part of the lease, then CONFLICT: kept
        assert run.unsent == 5
        await series._give_up(job_id, held["metric_lease"]["seq"], heal=False)
    done = await read(gql, job_id)
    assert done["status"] == "COMPLETED"
    assert done["metricSeries"] == [
        {"key": "loss", "totalPoints": 5, "firstStep": 0, "lastStep": 4}
    ]
