"""Unexpected failures are masked for clients with a request id, and logged in detail."""

from __future__ import annotations

import logging

import pytest
from starlette.applications import Starlette

from graphql_api.services.container import Services
from tests.conftest import GraphQLClient


async def test_unexpected_errors_are_masked_and_logged_with_the_same_id(
    gql: GraphQLClient,
    app: Starlette,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(job_id: str) -> None:
        raise RuntimeError("database password is hunter2")

    services: Services = app.state.services
    monkeypatch.setattr(services.training, "get", broken)
    with caplog.at_level(logging.ERROR, logger="mltrain.errors"):
        body = await gql.execute('{ trainingJob(jobId: "x") { jobId } }')
    error = body["errors"][0]
    assert error["message"] == "Unexpected error."
    assert "hunter2" not in str(body)
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    request_id = error["extensions"]["requestId"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "hunter2" in str(logged[0].exc_info[1])


async def test_graphql_syntax_and_validation_errors_pass_through(gql: GraphQLClient) -> None:
    body = await gql.execute("{ trainingJobs { edges { node { nope } } } }")
    assert "Cannot query field 'nope'" in body["errors"][0]["message"]
    syntax = await gql.execute("{ trainingJobs( }")
    assert syntax["errors"][0]["message"].startswith("Syntax Error")


async def test_health_and_graphiql(gql: GraphQLClient) -> None:
    health = await gql.http.get("/healthz")
    assert health.json() == {"status": "ok"}
    page = await gql.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
