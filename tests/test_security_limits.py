"""Cost limits: each refused with an error naming the limit, before any resolver runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.security_helpers import RoleClient, bearer, client, secured_app

LIMITS = {
    "max_query_depth": 4,
    "max_aliases": 3,
    "max_tokens": 60,
    "max_root_fields": 3,
    "max_body_bytes": 2048,
}


@pytest.fixture
async def api(storage: MongoStorage) -> AsyncIterator[RoleClient]:
    async with secured_app(storage, **LIMITS) as app, client(app) as http:
        yield RoleClient(http)


def limit_of(response: httpx.Response) -> dict[str, Any]:
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    extensions: dict[str, Any] = errors[0]["extensions"]
    assert extensions["code"] == "LIMIT_EXCEEDED"
    assert "Unexpected" not in errors[0]["message"]
    return extensions


def test_documented_defaults() -> None:
    settings = Settings()
    assert (
        settings.max_query_depth,
        settings.max_aliases,
        settings.max_tokens,
        settings.max_root_fields,
        settings.max_body_bytes,
    ) == (10, 30, 2000, 10, 1_000_000)
    assert settings.max_subscriptions_per_connection == 20
    assert settings.max_connections_per_key == 20
    assert settings.introspection and settings.api_keys is None


async def test_depth(api: RoleClient) -> None:
    ok = "{ trainingJobs { edges { node { jobId } } } }"  # depth 4
    assert (await api.post(Role.VIEWER, ok)).json() == {"data": {"trainingJobs": {"edges": []}}}
    deep = "{ trainingJobs { edges { node { modelVersion { modelId } } } } }"
    response = await api.post(Role.VIEWER, deep)
    assert limit_of(response) == {"code": "LIMIT_EXCEEDED", "limit": "maxQueryDepth", "max": 4}
    assert "MLTRAIN_MAX_QUERY_DEPTH" in response.json()["errors"][0]["message"]


async def test_depth_counts_through_fragments_and_survives_cycles(api: RoleClient) -> None:
    deep = """{ trainingJobs { ...E } }
      fragment E on TrainingJobConnection { edges { node { modelVersion { modelId } } } }"""
    assert limit_of(await api.post(Role.VIEWER, deep))["limit"] == "maxQueryDepth"
    cyclic = """{ trainingJobs { ...A } } fragment A on TrainingJobConnection { ...B }
      fragment B on TrainingJobConnection { ...A }"""
    body = (await api.post(Role.VIEWER, cyclic)).json()
    assert "errors" in body and body.get("data") is None  # refused by validation, no hang


async def test_aliases(api: RoleClient) -> None:
    aliased = "{ a: __typename b: __typename c: __typename d: __typename }"
    assert limit_of(await api.post(Role.VIEWER, aliased))["limit"] == "maxAliases"


async def test_root_fields(api: RoleClient) -> None:
    many = '{ x1: modelVersion(modelId: "a") { modelId } trainingJobs { pageInfo { hasNextPage } } '
    many += 'productionModelVersion(modelName: "n") { modelId } latestModelVersion(modelName: "n") '
    many += "{ modelId } }"
    assert limit_of(await api.post(Role.VIEWER, many))["limit"] == "maxRootFields"


async def test_tokens(api: RoleClient) -> None:
    long = "{ " + " ".join(["__typename"] * 70) + " }"
    assert limit_of(await api.post(Role.VIEWER, long)) == {
        "code": "LIMIT_EXCEEDED",
        "limit": "maxTokens",
        "max": 60,
    }


async def test_first_has_a_maximum(api: RoleClient) -> None:
    response = await api.post(Role.VIEWER, "{ trainingJobs(first: 101) { edges { cursor } } }")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "VALIDATION_ERROR" and "100" in error["message"]


async def test_body_size_declared(api: RoleClient) -> None:
    padding = "#" + "x" * 3000 + "\n"
    response = await api.http.post(
        "/graphql", json={"query": padding + "{ __typename }"}, headers=bearer(Role.VIEWER)
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"] == {
        "code": "LIMIT_EXCEEDED",
        "limit": "maxBodyBytes",
        "max": 2048,
    }


async def test_body_size_streamed_without_a_length(api: RoleClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ __typename }", "x": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = await api.http.post(
        "/graphql",
        content=chunks(),
        headers={**bearer(Role.VIEWER), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "maxBodyBytes" in response.text


async def test_introspection_and_graphiql_can_be_switched_off(storage: MongoStorage) -> None:
    async with (
        secured_app(storage, introspection=False, graphiql=False) as app,
        client(app) as http,
    ):
        api = RoleClient(http)
        body = (await api.post(Role.ADMIN, "{ __schema { types { name } } }")).json()
        assert "introspection" in body["errors"][0]["message"].lower()
        assert (await api.post(Role.ADMIN, "{ __typename }")).json() == {
            "data": {"__typename": "Query"}
        }
        page = await http.get("/graphql", headers={"accept": "text/html", **bearer(Role.ADMIN)})
        assert page.status_code != 200 or "graphiql" not in page.text.lower()
        anonymous_page = await http.get("/graphql", headers={"accept": "text/html"})
        assert anonymous_page.status_code == 401


async def test_graphiql_introspection_fits_the_default_limits(storage: MongoStorage) -> None:
    from graphql import get_introspection_query

    async with secured_app(storage) as app, client(app) as http:
        response = await RoleClient(http).post(Role.VIEWER, get_introspection_query())
        assert "errors" not in response.json()
