"""A key limited to model names searching (issue 14 item 8): every new filter and the metric
ordering still list only the key's models, counts included (narrowed in the query). Both
backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette

from graphql_api.auth.roles import Role
from graphql_api.storage.mongo import MongoStorage
from tests import operations as ops
from tests.security_helpers import RoleClient, client, secured_app
from tests.test_keys_scope import Scoped

VERSIONS = """query($filter: ModelVersionFilter, $order: MetricOrderInput) {
  modelVersions(filter: $filter, orderByMetric: $order, first: 100) {
    totalCount edges { node { modelName } } } }"""
JOBS = """query($filter: TrainingJobFilter, $order: MetricOrderInput) {
  trainingJobs(filter: $filter, orderByMetric: $order, first: 100) {
    totalCount edges { node { modelVersion { modelName } } } } }"""

NAMES = ["churn-eu", "churn-us", "fraud-a"]


@pytest.fixture
async def app(storage: MongoStorage) -> AsyncIterator[Starlette]:
    async with secured_app(storage) as application:
        yield application


async def seed(admin: RoleClient) -> None:
    for name in NAMES:
        payload = {
            "modelName": name,
            "version": "1.0.0",
            "modelType": "CLASSIFICATION",
            "metrics": {"val_acc": 0.9},
            "tags": [{"key": "team", "value": "core"}],
        }
        data = await admin.data(Role.ADMIN, ops.REGISTER, input=payload)
        model_id = data["registerModelVersion"]["modelId"]
        job = {
            "modelId": model_id,
            "datasetId": "d",
            "hyperparameters": {"optimizer": {"name": "adam"}},
        }
        data = await admin.data(Role.ADMIN, ops.CREATE_JOB, input=job)
        job_id = data["createTrainingJob"]["jobId"]
        await admin.data(Role.ADMIN, ops.START, id=job_id)
        await admin.data(Role.ADMIN, ops.REPORT, id=job_id, metrics={"loss": 0.1})


VERSION_SEARCHES: list[dict[str, Any]] = [
    {"filter": {"tags": [{"key": "team", "values": ["core"]}]}},
    {"filter": {"nameContains": "-"}},
    {"filter": {"metrics": [{"key": "val_acc", "gt": 0.5}]}},
    {"order": {"metric": "val_acc"}},
    {"filter": {"modelNames": ["fraud-a"], "nameContains": "a"}},
]
JOB_SEARCHES: list[dict[str, Any]] = [
    {"filter": {"hyperparameters": [{"path": "optimizer.name", "eq": "adam"}]}},
    {"filter": {"metrics": [{"key": "loss", "lt": 1}]}},
    {"order": {"metric": "loss", "direction": "ASC"}},
]


async def test_a_limited_key_finds_only_its_models_with_every_search(
    app: Starlette, storage: MongoStorage
) -> None:
    async with client(app) as http:
        world = Scoped(http, storage)
        await seed(world.admin)
        secret = await world.key("churn-*")
        for variables in VERSION_SEARCHES:
            body = await world.post(secret, VERSIONS, **variables)
            found = body["data"]["modelVersions"]
            names = {edge["node"]["modelName"] for edge in found["edges"]}
            assert names <= {"churn-eu", "churn-us"}, (variables, names)
            assert found["totalCount"] == len(found["edges"]), variables
            if "modelNames" not in variables.get("filter", {}):
                assert names == {"churn-eu", "churn-us"}, (variables, names)
        for variables in JOB_SEARCHES:
            body = await world.post(secret, JOBS, **variables)
            found = body["data"]["trainingJobs"]
            names = {edge["node"]["modelVersion"]["modelName"] for edge in found["edges"]}
            assert names == {"churn-eu", "churn-us"}, (variables, names)
            assert found["totalCount"] == 2, variables
