"""Queues and claims (issue 15 item 1), through the API on every backend: a worker claims the
oldest PENDING job of its queue with a lease; racing workers never get the same job."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import REAL_URI, GraphQLClient
from tests.operations import CLAIM, CREATE_JOB, HEARTBEAT, JOB, REGISTER

HISTORY = """
query($id: ID!) { trainingJob(jobId: $id) {
  leaseToken queue workerId
  history(first: 20) { edges { node { kind previousStatus status } } }
} }"""


async def new_model(gql: GraphQLClient) -> str:
    data = await gql.data(
        REGISTER,
        input={
            "modelName": f"m-{uuid.uuid4().hex[:8]}",
            "version": "1.0.0",
            "modelType": "REGRESSION",
        },
    )
    return str(data["registerModelVersion"]["modelId"])


async def create(gql: GraphQLClient, model_id: str, **fields: Any) -> dict[str, Any]:
    data = await gql.data(CREATE_JOB, input={"modelId": model_id, "datasetId": "d", **fields})
    job: dict[str, Any] = data["createTrainingJob"]
    return job


async def claim(
    gql: GraphQLClient, queue: str = "default", worker: str = "w-1", **extra: Any
) -> dict[str, Any] | None:
    result: dict[str, Any] | None = (await gql.data(CLAIM, queue=queue, worker=worker, **extra))[
        "claimTrainingJob"
    ]
    return result


async def test_a_claim_takes_the_oldest_pending_job_of_its_queue_only(gql: GraphQLClient) -> None:
    model_id = await new_model(gql)
    first = await create(gql, model_id, jobId="a-1", queue="gpu")
    await create(gql, model_id, jobId="b-1")  # default queue
    await create(gql, model_id, jobId="a-2", queue="gpu")
    assert first["status"] == "PENDING"

    claimed = await claim(gql, "gpu", "worker-7", leaseSeconds=30)
    assert claimed is not None
    assert (claimed["jobId"], claimed["status"], claimed["queue"]) == ("a-1", "RUNNING", "gpu")
    assert claimed["workerId"] == "worker-7"
    assert len(claimed["leaseToken"]) >= 32
    started = datetime.fromisoformat(claimed["startedDate"])
    assert datetime.fromisoformat(claimed["lastHeartbeatAt"]) == started
    assert datetime.fromisoformat(claimed["leaseExpiresAt"]) == started + timedelta(seconds=30)

    second = await claim(gql, "gpu", "worker-8")
    assert second is not None and second["jobId"] == "a-2"
    assert second["leaseToken"] != claimed["leaseToken"]
    assert await claim(gql, "gpu", "worker-9") is None  # empty: null, not an error
    # The default queue's job was never offered to the gpu workers.
    other = (await gql.data(JOB, id="b-1"))["trainingJob"]
    assert other["status"] == "PENDING"
    last = await claim(gql)
    assert last is not None and last["jobId"] == "b-1"


async def test_the_token_is_shown_once_and_the_claim_is_an_event(
    storage: MongoStorage, gql: GraphQLClient
) -> None:
    job = await create(gql, await new_model(gql))
    claimed = await claim(gql, worker="w-2")
    assert claimed is not None and claimed["leaseToken"]
    read = (await gql.data(HISTORY, id=job["jobId"]))["trainingJob"]
    assert read["leaseToken"] is None
    assert (read["queue"], read["workerId"]) == ("default", "w-2")
    kinds = [e["node"] for e in read["history"]["edges"]]
    assert kinds == [
        {"kind": "CREATED", "previousStatus": None, "status": "PENDING"},
        {"kind": "CLAIMED", "previousStatus": "PENDING", "status": "RUNNING"},
    ]
    # Neither the token nor its hash is in the event subscribers are sent.
    (_created, claim_event) = await storage.events.for_entity(job["jobId"], 10)
    assert claim_event.snapshot["worker_id"] == "w-2"
    assert "lease_token_hash" not in claim_event.snapshot
    assert claimed["leaseToken"] not in str(claim_event)


@pytest.mark.parametrize(
    ("variables", "field", "rule"),
    [
        ({"queue": "gpu queue"}, "queue", "id_pattern"),
        ({"queue": ""}, "queue", "id_pattern"),
        ({"worker": "../w"}, "workerId", "id_pattern"),
        ({"leaseSeconds": 0}, "leaseSeconds", "min"),
        ({"leaseSeconds": -5}, "leaseSeconds", "min"),
        ({"leaseSeconds": 3601}, "leaseSeconds", "max"),
    ],
)
async def test_bad_claim_arguments_are_validation_errors_and_claim_nothing(
    gql: GraphQLClient, variables: dict[str, Any], field: str, rule: str
) -> None:
    job = await create(gql, await new_model(gql))
    arguments = {"queue": "default", "worker": "w-1", **variables}
    result = (await gql.data(CLAIM, **arguments))["claimTrainingJob"]
    assert result["__typename"] == "ValidationError"
    assert (result["field"], result["rule"]) == (field, rule)
    assert (await gql.data(JOB, id=job["jobId"]))["trainingJob"]["status"] == "PENDING"


@pytest.mark.parametrize("queue", ["has space", "x" * 129, "-leading", "a/b"])
async def test_a_bad_queue_at_creation_is_a_validation_error(
    gql: GraphQLClient, queue: str
) -> None:
    result = await create(gql, await new_model(gql), queue=queue)
    assert result["__typename"] == "ValidationError" and result["field"] == "queue"
    total = await gql.data("{ trainingJobs { totalCount } }")
    assert total["trainingJobs"]["totalCount"] == 0


async def test_jobs_stored_before_queues_load_and_are_claimed_from_the_default_queue(
    storage: MongoStorage, gql: GraphQLClient
) -> None:
    model_id = await new_model(gql)
    # A job document as the version before workers wrote it: no queue, no lease fields.
    await storage._db["training_jobs"].insert_one(
        {
            "_id": "old-1",
            "model_id": model_id,
            "status": "PENDING",
            "hyperparameters": {"lr": 0.1},
            "dataset_id": "d",
            "started_date": None,
            "completed_date": None,
            "metrics": {},
            "logs_url": None,
            "created_date": datetime(2025, 1, 1),
            "failure_reason": None,
        }
    )
    read = (await gql.data(HISTORY, id="old-1"))["trainingJob"]
    assert (read["queue"], read["workerId"], read["leaseToken"]) == ("default", None, None)
    await storage.ensure_indexes()  # the next start-up
    claimed = await claim(gql)
    assert claimed is not None and claimed["jobId"] == "old-1"


# ---- the race: 8 workers x 200 jobs, each job claimed exactly once, on every write path

MODES = ["mock", "mock-guarded", *(["real"] if REAL_URI else [])]
WORKERS = 8
JOBS = 200


@pytest.fixture(params=MODES)
async def racing(request: pytest.FixtureRequest) -> AsyncIterator[GraphQLClient]:
    name = f"mltrain_claims_{uuid.uuid4().hex[:12]}"
    mode = request.param
    storage = MongoStorage.connect(
        REAL_URI if mode == "real" else None,
        name,
        guarded_updates=True if mode == "mock-guarded" else None,
    )
    app = create_app(Settings(), storage=storage)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield GraphQLClient(http)
    if mode == "real":
        await storage._db.client.drop_database(name)
    await storage.close()


async def test_racing_workers_claim_every_job_exactly_once(racing: GraphQLClient) -> None:
    gql = racing
    model_id = await new_model(gql)
    for i in range(JOBS):
        await create(gql, model_id, jobId=f"race-{i:03d}", queue="race")
    await create(gql, model_id, jobId="elsewhere")  # another queue: never claimed here

    async def worker(n: int) -> list[tuple[str, str]]:
        got: list[tuple[str, str]] = []
        while True:
            job = await claim(gql, "race", f"w-{n}")
            if job is None:
                return got
            assert job["__typename"] == "TrainingJob", job
            got.append((job["jobId"], job["leaseToken"]))

    results = await asyncio.gather(*(worker(n) for n in range(WORKERS)))
    claims = [job_id for got in results for job_id, _ in got]
    assert Counter(claims) == Counter(f"race-{i:03d}" for i in range(JOBS))
    assert len({token for got in results for _, token in got}) == JOBS
    # What each worker was told is what is stored.
    for n, got in enumerate(results):
        for job_id, _ in got[:3]:
            job = (await gql.data(HISTORY, id=job_id))["trainingJob"]
            assert job["workerId"] == f"w-{n}"
            assert [e["node"]["kind"] for e in job["history"]["edges"]] == ["CREATED", "CLAIMED"]
    assert (await gql.data(JOB, id="elsewhere"))["trainingJob"]["status"] == "PENDING"
    # A claim's token holds only its own job: on the job claimed next it is refused.
    won = [claimed for got in results for claimed in got][:16]
    for (job_id, _), (_, other) in zip(won, won[1:] + won[:1], strict=True):
        refused = (await gql.data(HEARTBEAT, id=job_id, token=other))["heartbeatTrainingJob"]
        assert refused["__typename"] == "LeaseLostError", refused
