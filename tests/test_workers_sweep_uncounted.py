"""The liveness sweep runs in the background of every server (issue 15 item 3); its database
work is no request's cost, so a request's round trips (StoreStats, which tests pin query costs
with) stay exact while it sweeps beside it. Both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import CREATE_JOB, REGISTER

JOBS = "query { trainingJobs(first: 20) { edges { node { jobId modelVersion { modelName } } } } }"


@pytest.fixture
async def sweeping_gql(storage: MongoStorage) -> AsyncIterator[tuple[GraphQLClient, Any]]:
    # A sweep every 10 ms: it is always at work while the requests below run.
    settings = Settings(allowed_hosts=["testserver"], sweep_interval=0.01)
    application = create_app(settings, storage=storage)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield GraphQLClient(http), application


async def test_a_requests_round_trips_leave_out_the_sweeps(
    sweeping_gql: tuple[GraphQLClient, Any], storage: MongoStorage
) -> None:
    gql, application = sweeping_gql
    version = {"modelName": "m", "version": "1.0.0", "modelType": "REGRESSION"}
    model_id = (await gql.data(REGISTER, input=version))["registerModelVersion"]["modelId"]
    for _ in range(5):
        await gql.data(CREATE_JOB, input={"modelId": model_id, "datasetId": "d"})
    sweep = application.state.sweep
    for _ in range(20):
        storage.stats.round_trips = 0
        await gql.data(JOBS)
        # One for the page, one for the versions it names; the sweep's own reads are not here.
        assert storage.stats.round_trips == 2
    assert sweep._task is not None and not sweep._task.done()
