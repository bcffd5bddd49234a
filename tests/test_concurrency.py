"""Concurrent callers racing for the same transition: exactly one wins, the rest are told why.

Each test runs over every backend, and on the mock also with the claim guard that the server
uses where conditional updates are not atomic (FerretDB), so both write paths are exercised.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import register_id
from tests.conftest import REAL_URI, GraphQLClient
from tests.operations import CREATE_JOB, PROMOTE, START

MODES = ["mock", "mock-guarded", *(["real"] if REAL_URI else [])]


@pytest.fixture(params=MODES)
async def racing(request: pytest.FixtureRequest) -> AsyncIterator[GraphQLClient]:
    name = f"mltrain_race_{uuid.uuid4().hex[:12]}"
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
        await storage.database.client.drop_database(name)
    await storage.close()


async def test_twenty_concurrent_starts_of_one_job_have_one_winner(racing: GraphQLClient) -> None:
    model_id = await register_id(racing, "1.0.0")
    job = await racing.data(CREATE_JOB, input={"modelId": model_id, "datasetId": "d"})
    job_id = job["createTrainingJob"]["jobId"]

    results = await asyncio.gather(*(racing.data(START, id=job_id) for _ in range(20)))
    outcomes = [r["startTrainingJob"] for r in results]
    kinds = Counter(o["__typename"] for o in outcomes)
    assert kinds == {"TrainingJob": 1, "InvalidTransitionError": 19}
    for refused in (o for o in outcomes if o["__typename"] != "TrainingJob"):
        assert (refused["currentStatus"], refused["requestedStatus"]) == ("RUNNING", "RUNNING")
    history = await racing.data(
        "query($id: ID!) { trainingJob(jobId: $id) { status "
        "history { edges { node { kind } } } } }",
        id=job_id,
    )
    assert history["trainingJob"]["status"] == "RUNNING"
    edges = history["trainingJob"]["history"]["edges"]
    assert [e["node"]["kind"] for e in edges] == ["CREATED", "STARTED"]


async def test_ten_concurrent_deployments_leave_exactly_one_in_production(
    racing: GraphQLClient,
) -> None:
    ids = [await register_id(racing, f"1.{n}.0") for n in range(10)]
    for model_id in ids:
        await racing.data(PROMOTE, id=model_id, to="TESTING")

    results = await asyncio.gather(*(racing.data(PROMOTE, id=i, to="PRODUCTION") for i in ids))
    outcomes: list[dict[str, Any]] = [r["promoteModelVersion"] for r in results]
    assert {o["__typename"] for o in outcomes} <= {"ModelVersion", "ConflictError"}
    assert any(o["__typename"] == "ModelVersion" for o in outcomes)

    listing = await racing.data(
        '{ modelVersions(first: 20, filter: {modelNames: ["churn"]}) '
        "{ edges { node { modelId status } } } }"
    )
    statuses = {
        e["node"]["modelId"]: e["node"]["status"] for e in listing["modelVersions"]["edges"]
    }
    in_production = [i for i, s in statuses.items() if s == "PRODUCTION"]
    assert len(in_production) == 1
    production = await racing.data('{ productionModelVersion(modelName: "churn") { modelId } }')
    assert production["productionModelVersion"] == {"modelId": in_production[0]}
    # A loser either stayed in testing (its promotion was refused) or was deployed and then
    # retired by a later winner: never lost in between.
    for outcome in outcomes:
        if outcome["__typename"] == "ConflictError":
            assert outcome["field"] == "modelId"
    assert set(statuses.values()) <= {"PRODUCTION", "TESTING", "ARCHIVED"}
