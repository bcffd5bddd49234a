"""API keys and roles over HTTP: who may call which mutation, 401s, and the audit actor."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from starlette.applications import Starlette

from graphql_api.auth.roles import MUTATION_ROLES, Role
from graphql_api.schema import schema
from graphql_api.storage.mongo import MongoStorage
from tests import operations as ops
from tests import registry_operations as registry_ops
from tests.security_helpers import KEY_NAMES, RoleClient, client, secured_app, snapshot


@pytest.fixture
async def secured(storage: MongoStorage) -> AsyncIterator[Starlette]:
    async with secured_app(storage) as app:
        yield app


@pytest.fixture
async def api(secured: Starlette) -> AsyncIterator[RoleClient]:
    async with client(secured) as http:
        yield RoleClient(http)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def fresh_model(api: RoleClient) -> str:
    model_id = new_id("m")
    await api.data(
        Role.ADMIN,
        ops.REGISTER,
        input={
            "modelName": new_id("name"),
            "version": "1.0.0",
            "modelType": "PREDICTION",
            "modelId": model_id,
        },
    )
    return model_id


async def fresh_job(api: RoleClient, *, running: bool) -> str:
    model_id = await fresh_model(api)
    job_id = new_id("j")
    await api.data(
        Role.ADMIN, ops.CREATE_JOB, input={"modelId": model_id, "datasetId": "d", "jobId": job_id}
    )
    if running:
        await api.data(Role.ADMIN, ops.START, id=job_id)
    return job_id


Call = tuple[str, str, dict[str, Any]]  # (document, entity id, variables)


async def register(api: RoleClient) -> Call:
    model_id = new_id("m")
    return (
        ops.REGISTER,
        model_id,
        {
            "input": {
                "modelName": new_id("n"),
                "version": "1.0.0",
                "modelType": "REGRESSION",
                "modelId": model_id,
            }
        },
    )


def model_call(document: str, **extra: Any) -> Callable[[RoleClient], Awaitable[Call]]:
    async def setup(api: RoleClient) -> Call:
        model_id = await fresh_model(api)
        return document, model_id, {"id": model_id, **extra}

    return setup


def job_call(
    document: str, *, running: bool, **extra: Any
) -> Callable[[RoleClient], Awaitable[Call]]:
    async def setup(api: RoleClient) -> Call:
        job_id = await fresh_job(api, running=running)
        return document, job_id, {"id": job_id, **extra}

    return setup


async def create_job(api: RoleClient) -> Call:
    model_id = await fresh_model(api)
    job_id = new_id("j")
    return (
        ops.CREATE_JOB,
        job_id,
        {"input": {"modelId": model_id, "datasetId": "d", "jobId": job_id}},
    )


async def claim_job(api: RoleClient) -> Call:
    model_id = await fresh_model(api)
    job_id, queue = new_id("j"), new_id("q")
    await api.data(
        Role.ADMIN,
        ops.CREATE_JOB,
        input={"modelId": model_id, "datasetId": "d", "jobId": job_id, "queue": queue},
    )
    return ops.CLAIM, job_id, {"queue": queue, "worker": "w-1"}


async def heartbeat_job(api: RoleClient) -> Call:
    document, job_id, variables = await claim_job(api)
    claimed = await api.data(Role.ADMIN, document, **variables)
    token = claimed["claimTrainingJob"]["leaseToken"]
    return ops.HEARTBEAT, job_id, {"id": job_id, "token": token}


async def retry_job(api: RoleClient) -> Call:
    job_id = await fresh_job(api, running=True)
    await api.data(Role.ADMIN, ops.COMPLETE, id=job_id, metrics={"loss": 0.1})
    return ops.RETRY, job_id, {"id": job_id}


async def acknowledge_job(api: RoleClient) -> Call:
    document, job_id, variables = await claim_job(api)
    claimed = await api.data(Role.ADMIN, document, **variables)
    await api.data(Role.ADMIN, ops.CANCEL_GRACEFULLY, id=job_id, grace=60)
    token = claimed["claimTrainingJob"]["leaseToken"]
    return ops.ACKNOWLEDGE_CANCEL, job_id, {"id": job_id, "token": token}


def alias_call(*, set_it: bool) -> Callable[[RoleClient], Awaitable[Call]]:
    """setModelAlias of a fresh version, or deleteModelAlias of an alias set (as admin)."""

    async def setup(api: RoleClient) -> Call:
        model_id = await fresh_model(api)
        version = await api.data(Role.ADMIN, registry_ops.VERSION, id=model_id)
        name = version["modelVersion"]["modelName"]
        variables = {"name": name, "alias": "champion", "id": model_id, "expected": None}
        if not set_it:
            return registry_ops.SET_ALIAS, model_id, variables
        await api.data(Role.ADMIN, registry_ops.SET_ALIAS, **variables)
        del variables["id"]
        return registry_ops.DELETE_ALIAS, model_id, variables

    return setup


async def rollback_call(api: RoleClient) -> Call:
    """A name with 1.0.0 deployed, then replaced by 1.1.0: 1.0.0 can be put back."""
    name = new_id("name")
    ids = []
    for version in ("1.0.0", "1.1.0"):
        model_id = new_id("m")
        new = {
            "modelName": name,
            "version": version,
            "modelType": "PREDICTION",
            "modelId": model_id,
        }
        await api.data(Role.ADMIN, ops.REGISTER, input=new)
        for stage in ("TESTING", "PRODUCTION"):
            await api.data(Role.ADMIN, ops.PROMOTE, id=model_id, to=stage)
        ids.append(model_id)
    return registry_ops.ROLLBACK, ids[0], {"name": name, "to": ids[0], "reason": "regression"}


#: Each mutation, set up (as admin) so that it would succeed.
SETUPS: dict[str, Callable[[RoleClient], Awaitable[Call]]] = {
    "registerModelVersion": register,
    "promoteModelVersion": model_call(ops.PROMOTE),
    "archiveModelVersion": model_call(ops.ARCHIVE),
    "updateModelVersionMetrics": model_call(ops.UPDATE_MODEL_METRICS, metrics={"f1": 0.5}),
    "updateModelVersion": model_call(registry_ops.UPDATE_VERSION, description="why"),
    "setModelAlias": alias_call(set_it=False),
    "deleteModelAlias": alias_call(set_it=True),
    "rollbackModelVersion": rollback_call,
    "createTrainingJob": create_job,
    "cancelTrainingJob": job_call(ops.CANCEL, running=False),
    "startTrainingJob": job_call(ops.START, running=False),
    "claimTrainingJob": claim_job,
    "heartbeatTrainingJob": heartbeat_job,
    "retryTrainingJob": retry_job,
    "acknowledgeTrainingJobCancel": acknowledge_job,
    "reportTrainingMetrics": job_call(ops.REPORT, running=True, metrics={"loss": 0.1}),
    "completeTrainingJob": job_call(ops.COMPLETE, running=True, metrics={"loss": 0.1}),
    "failTrainingJob": job_call(ops.FAIL, running=True, reason="out of memory"),
    "setTrainingJobLogsUrl": job_call(ops.SET_LOGS, running=True, url="s3://logs/x"),
}

#: A heartbeat of a healthy job records no event (lifecycle.JobTransitions.HEARTBEAT).
NO_EVENT = {"heartbeatTrainingJob"}

EXPECTED_ALLOWED = {
    Role.VIEWER: set(),
    Role.WORKER: {
        "startTrainingJob",
        "claimTrainingJob",
        "heartbeatTrainingJob",
        "acknowledgeTrainingJobCancel",
        "reportTrainingMetrics",
        "completeTrainingJob",
        "failTrainingJob",
        "setTrainingJobLogsUrl",
    },
    Role.OPERATOR: set(SETUPS),
    Role.ADMIN: set(SETUPS),
}


#: Key management (admin only): each role against them in tests/test_keys_stored.py.
KEY_MANAGEMENT = {"createApiKey", "revokeApiKey"}
#: Webhooks (admin only): each role against them in tests/test_webhooks_roles.py.
WEBHOOK_MANAGEMENT = {
    "createWebhook",
    "updateWebhook",
    "deleteWebhook",
    "testWebhook",
    "redeliverWebhookDelivery",
    "replayWebhook",
}


def test_every_mutation_is_in_the_role_table_and_tested() -> None:
    mutation_type = schema._schema.mutation_type
    assert mutation_type is not None
    assert (
        set(mutation_type.fields)
        == set(MUTATION_ROLES)
        == set(SETUPS) | KEY_MANAGEMENT | WEBHOOK_MANAGEMENT
    )


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_against_each_mutation(
    role: Role, api: RoleClient, storage: MongoStorage
) -> None:
    for field, setup in SETUPS.items():
        document, entity_id, variables = await setup(api)
        before = await snapshot(storage)
        response = await api.post(role, document, **variables)
        assert response.status_code == 200, response.text
        result = response.json()["data"][field]
        if field in EXPECTED_ALLOWED[role]:
            assert result["__typename"] in {"ModelVersion", "TrainingJob"}, (field, result)
            if field in NO_EVENT:
                continue
            events = await storage.events.for_entity(entity_id, 50)
            assert events[-1].actor == KEY_NAMES[role], (field, events[-1])
        else:
            assert result["__typename"] == "ForbiddenError", (field, result)
            assert result["code"] == "FORBIDDEN"
            assert await snapshot(storage) == before, f"{role} {field} changed data"


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_may_query(role: Role, api: RoleClient) -> None:
    data = await api.data(role, "{ trainingJobs(first: 1) { edges { node { jobId } } } }")
    assert data == {"trainingJobs": {"edges": []}}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer mlt_wrong"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "not-bearer", "empty"],
)
async def test_no_valid_key_is_401_and_changes_nothing(
    headers: dict[str, str], api: RoleClient, storage: MongoStorage
) -> None:
    before = await snapshot(storage)
    for document, variables in [
        ("{ trainingJobs { edges { node { jobId } } } }", {}),
        (
            ops.REGISTER,
            {"input": {"modelName": "x", "version": "1.0.0", "modelType": "PREDICTION"}},
        ),
    ]:
        response = await api.http.post(
            "/graphql", json={"query": document, "variables": variables}, headers=headers
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    get = await api.http.get("/graphql", params={"query": "{ __typename }"}, headers=headers)
    assert get.status_code == 401
    assert await snapshot(storage) == before


async def test_graphiql_page_and_health_need_no_key(api: RoleClient) -> None:
    page = await api.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}


async def test_open_mode_records_no_actor_and_allows_everything(
    gql: Any, storage: MongoStorage
) -> None:
    # The `app` fixture configures no keys: open access (loopback-only servers).
    data = await gql.data(
        ops.REGISTER,
        input={
            "modelName": "open",
            "version": "1.0.0",
            "modelType": "PREDICTION",
            "modelId": "open-1",
        },
    )
    assert data["registerModelVersion"]["__typename"] == "ModelVersion"
    events = await storage.events.for_entity("open-1", 10)
    assert events[-1].actor is None
