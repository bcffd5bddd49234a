"""API keys issued while running (issue 17, item 3): createApiKey, apiKeys, revokeApiKey over
HTTP, against both backends; bad input changes nothing; expiry; last use written in batches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.auth.roles import Role
from graphql_api.auth.stored_keys import KeyDirectory
from graphql_api.domain.api_keys import ROLE_NAMES
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import eventually
from tests.security_helpers import KEY_NAMES, RoleClient, client, secured_app, snapshot

CREATE = """mutation($name: String!, $keyRole: ApiKeyRole!, $expiresAt: DateTime,
                     $modelNames: [String!]) {
  createApiKey(name: $name, role: $keyRole, expiresAt: $expiresAt, modelNames: $modelNames) {
    __typename
    ... on CreatedApiKey { secret key { name role modelNames status expiresAt createdBy } }
    ... on Error { code message }
    ... on ValidationError { field rule }
    ... on ConflictError { field }
    ... on ForbiddenError { role requiredRole }
  } }"""
REVOKE = """mutation($name: String!) { revokeApiKey(name: $name) {
  __typename ... on ApiKey { name status revokedAt } ... on Error { code message }
  ... on NotFoundError { field } } }"""
LIST = """{ apiKeys { name role modelNames status createdAt createdBy expiresAt lastUsedAt
  revokedAt } }"""
WHO = "{ __typename }"


@pytest.fixture
async def app(storage: MongoStorage) -> AsyncIterator[Starlette]:
    # One instance: it applies its own changes at once, so its poll is kept out of the way
    # of the round trips counted below.
    async with secured_app(storage, key_poll_interval=60.0) as application:
        yield application


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as connection:
        yield connection


@pytest.fixture
def api(http: httpx.AsyncClient) -> RoleClient:
    return RoleClient(http)


def directory(app: Starlette) -> KeyDirectory:
    keys: KeyDirectory = app.state.keys
    return keys


async def create(api: RoleClient, name: str, role: str = "VIEWER", **extra: Any) -> dict[str, Any]:
    data = await api.data(Role.ADMIN, CREATE, name=name, keyRole=role, **extra)
    result: dict[str, Any] = data["createApiKey"]
    return result


async def with_secret(http: httpx.AsyncClient, secret: str, query: str = WHO) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {secret}"}
    )


def test_the_services_know_every_role() -> None:
    assert tuple(role.value for role in Role) == ROLE_NAMES


async def test_a_created_key_works_at_once_and_its_secret_is_shown_only_once(
    api: RoleClient, http: httpx.AsyncClient, storage: MongoStorage
) -> None:
    created = await create(api, "ci-runner", "WORKER")
    assert created["__typename"] == "CreatedApiKey"
    secret = created["secret"]
    assert secret.startswith("mlt_") and len(secret) > 40
    assert created["key"] == {
        "name": "ci-runner",
        "role": "WORKER",
        "modelNames": [],
        "status": "ACTIVE",
        "expiresAt": None,
        "createdBy": KEY_NAMES[Role.ADMIN],
    }
    response = await with_secret(http, secret)
    assert response.status_code == 200, response.text
    # Never shown again, nor its digest: not by apiKeys, not in the database.
    listed = await api.post(Role.ADMIN, LIST)
    stored = await snapshot(storage)
    assert secret not in listed.text and secret not in repr(stored)
    from graphql_api.domain.api_keys import digest_of

    assert digest_of(secret) not in listed.text
    [key] = listed.json()["data"]["apiKeys"]
    assert key["name"] == "ci-runner" and key["status"] == "ACTIVE"
    assert key["createdAt"] is not None and key["revokedAt"] is None


async def test_the_new_key_acts_with_its_role(
    api: RoleClient, http: httpx.AsyncClient, storage: MongoStorage
) -> None:
    secret = (await create(api, "read-only"))["secret"]
    mutation = """mutation { registerModelVersion(input: {modelName: "m", version: "1.0.0",
      modelType: REGRESSION}) { __typename ... on ForbiddenError { role requiredRole } } }"""
    before = await snapshot(storage)
    response = await with_secret(http, secret, mutation)
    assert response.json()["data"]["registerModelVersion"] == {
        "__typename": "ForbiddenError",
        "role": "viewer",
        "requiredRole": "operator",
    }
    assert await snapshot(storage) == before


@pytest.mark.parametrize("role", [Role.VIEWER, Role.WORKER, Role.OPERATOR])
async def test_only_admins_manage_keys(role: Role, api: RoleClient, storage: MongoStorage) -> None:
    await create(api, "victim")
    before = await snapshot(storage)
    for document, variables in [
        (CREATE, {"name": "mine", "keyRole": "ADMIN"}),
        (REVOKE, {"name": "victim"}),
    ]:
        body = (await api.post(role, document, **variables)).json()
        assert next(iter(body["data"].values()))["__typename"] == "ForbiddenError"
    listed = (await api.post(role, LIST)).json()
    assert listed["data"] is None
    assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await snapshot(storage) == before


IN_AN_HOUR = (datetime.now(UTC) + timedelta(hours=1)).isoformat()


@pytest.mark.parametrize(
    ("variables", "field", "rule"),
    [
        ({"modelNames": ["churn-[ab]"]}, "modelNames[0]", "characters"),
        ({"modelNames": ["churn-*", "a\\*"]}, "modelNames[1]", "characters"),
        ({"modelNames": [""]}, "modelNames[0]", "min_length"),
        ({"modelNames": ["churn\u200b-*"]}, "modelNames[0]", "characters"),
        ({"modelNames": [f"m{i}" for i in range(21)]}, "modelNames", "max_items"),
        ({"expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt", "min"),
        ({"expiresAt": "2030-01-01T00:00:00"}, "expiresAt", "timezone"),
        ({"name": "has space"}, "name", "id_pattern"),
        ({"name": "-dash-first"}, "name", "id_pattern"),
        ({"name": "x" * 65}, "name", "id_pattern"),
    ],
    ids=[
        "glob-class",
        "glob-escape",
        "empty-pattern",
        "hidden-char",
        "too-many-patterns",
        "expiry-past",
        "expiry-naive",
        "name-space",
        "name-dash",
        "name-long",
    ],
)
async def test_bad_input_names_the_field_and_changes_nothing(
    variables: dict[str, Any], field: str, rule: str, api: RoleClient, storage: MongoStorage
) -> None:
    before = await snapshot(storage)
    result = await create(api, **{"name": "k1", **variables})
    assert result["__typename"] == "ValidationError", result
    assert (result["field"], result["rule"]) == (field, rule), result
    assert await snapshot(storage) == before


async def test_unknown_role_is_refused_by_the_schema(api: RoleClient) -> None:
    body = (await api.post(Role.ADMIN, CREATE, name="k1", keyRole="ROOT")).json()
    assert body["data"] is None and "ApiKeyRole" in body["errors"][0]["message"]


@pytest.mark.parametrize("taken_by", ["stored", "revoked", "configured"])
async def test_a_taken_name_is_a_conflict_and_changes_nothing(
    taken_by: str, api: RoleClient, storage: MongoStorage
) -> None:
    name = KEY_NAMES[Role.VIEWER] if taken_by == "configured" else "taken"
    if taken_by != "configured":
        await create(api, name)
    if taken_by == "revoked":
        await api.data(Role.ADMIN, REVOKE, name=name)
    before = await snapshot(storage)
    result = await create(api, name, "ADMIN")
    assert (result["__typename"], result["field"]) == ("ConflictError", "name"), result
    assert await snapshot(storage) == before


async def test_revoked_key_is_refused_at_once_here(
    api: RoleClient, http: httpx.AsyncClient
) -> None:
    secret = (await create(api, "leaked"))["secret"]
    assert (await with_secret(http, secret)).status_code == 200
    revoked = (await api.data(Role.ADMIN, REVOKE, name="leaked"))["revokeApiKey"]
    assert revoked["status"] == "REVOKED" and revoked["revokedAt"] is not None
    assert (await with_secret(http, secret)).status_code == 401
    again = (await api.data(Role.ADMIN, REVOKE, name="leaked"))["revokeApiKey"]
    assert again == revoked  # idempotent: the first revocation's time
    missing = (await api.data(Role.ADMIN, REVOKE, name="nobody"))["revokeApiKey"]
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "name")


async def test_an_expired_key_is_refused(api: RoleClient, http: httpx.AsyncClient) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    created = await create(api, "short-lived", expiresAt=soon.isoformat())
    secret = created["secret"]
    assert created["key"]["expiresAt"] is not None
    assert (await with_secret(http, secret)).status_code == 200

    async def refused() -> bool:
        return (await with_secret(http, secret)).status_code == 401

    await eventually(refused, within=5, what="the key to expire")
    [listed] = (await api.data(Role.ADMIN, LIST))["apiKeys"]
    assert listed["status"] == "EXPIRED"


async def test_last_use_costs_no_write_per_request(
    app: Starlette, api: RoleClient, http: httpx.AsyncClient, storage: MongoStorage
) -> None:
    secret = (await create(api, "busy"))["secret"]
    for _ in range(25):
        assert (await with_secret(http, secret)).status_code == 200
    stored = await storage._db["api_keys"].find_one({"_id": "busy"})
    assert stored.get("last_used_at") is None  # nothing written yet: 25 requests, 0 writes
    # apiKeys already shows this instance's newer use.
    [listed] = (await api.data(Role.ADMIN, LIST))["apiKeys"]
    assert listed["lastUsedAt"] is not None
    round_trips = storage.api_keys.stats.round_trips
    await directory(app).flush_last_used()
    assert storage.api_keys.stats.round_trips - round_trips == 1  # one write per key used
    stored = await storage._db["api_keys"].find_one({"_id": "busy"})
    assert stored.get("last_used_at") is not None
