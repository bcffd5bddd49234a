"""Unexpected failures are masked for clients with a request id, and logged in detail."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.domain.enums import ModelType
from graphql_api.domain.queries import PageRequest, TrainingJobFilter, TrainingJobOrder
from graphql_api.services.container import Services
from tests.conftest import GraphQLClient
from tests.operations import REGISTER


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


async def test_graphql_syntax_and_validation_errors_keep_their_messages_and_get_a_code(
    gql: GraphQLClient,
) -> None:
    body = await gql.execute("{ trainingJobs { edges { node { nope } } } }")
    (error,) = body["errors"]
    assert "Cannot query field 'nope'" in error["message"]
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    syntax = await gql.execute("{ trainingJobs( }")
    (error,) = syntax["errors"]
    assert error["message"].startswith("Syntax Error")
    assert error["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}
    literal = await gql.execute('{ trainingJobs(first: "x") { totalCount } }')
    assert literal["errors"][0]["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    # An error of ours keeps its own code (a limit).
    aliases = " ".join(f"a{n}: __typename" for n in range(31))  # 30 allowed
    limited = await gql.execute("{ " + aliases + " }")
    assert limited["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


JOBS = "query($first: Int!, $statuses: [TrainingStatus!]) { trainingJobs(first: $first, " \
    "filter: {statuses: $statuses}) { totalCount } }"  # fmt: skip


@pytest.mark.parametrize(
    ("query", "variables", "field", "rule", "message"),
    [
        (JOBS, {"first": "abc"}, "$first", "type", "Int cannot represent non-integer value"),
        (JOBS, {}, "$first", "required", "non-null type 'Int!' to be provided"),
        (JOBS, {"first": None}, "$first", "required", "non-null type 'Int!'"),
        (JOBS, {"first": 5, "statuses": ["DONE"]}, "$statuses[0]", "type", "'DONE'"),
        (REGISTER, {"input": {"version": "1.0.0", "modelType": "REGRESSION"}},
         "$input.modelName", "required", "required field 'modelName'"),
        (REGISTER, {"input": {"modelName": "m", "version": "1.0.0", "modelType": "REGRESSION",
                              "colour": "red"}}, "$input", "type", "unknown field 'colour'"),
    ],
)  # fmt: skip
async def test_a_variable_that_does_not_fit_its_type_names_the_variable_and_the_rule(
    gql: GraphQLClient,
    query: str,
    variables: dict[str, object],
    field: str,
    rule: str,
    message: str,
) -> None:
    body = await gql.execute(query, **variables)
    (error,) = body["errors"]
    assert body.get("data") is None
    assert error["extensions"] == {"code": "VALIDATION_ERROR", "field": field, "rule": rule}
    assert message in error["message"]


async def test_health_and_graphiql(gql: GraphQLClient) -> None:
    health = await gql.http.get("/healthz")
    assert health.json() == {"status": "ok"}
    page = await gql.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def create_job_escaped(
    gql: GraphQLClient, services: Services, dataset_id: str, selection: str
) -> httpx.Response:
    """createTrainingJob, its body written by ``json.dumps``, which escapes every non-ASCII
    character: an unpaired surrogate reaches the server as ``\\udXXX`` (httpx's own JSON
    encoding would refuse to send it)."""
    version = await services.registry.register(
        model_name="churn", version="1.0.0", model_type=ModelType.CLASSIFICATION
    )
    query = (
        "mutation($input: CreateTrainingJobInput!) "
        f"{{ createTrainingJob(input: $input) {{ {selection} }} }}"
    )
    variables = {"input": {"modelId": version.model_id, "datasetId": dataset_id}}
    body = json.dumps({"query": query, "variables": variables})
    return await gql.http.post(
        "/graphql", content=body.encode(), headers={"content-type": "application/json"}
    )


async def test_unpaired_surrogate_escapes_are_refused_before_anything_runs(
    gql: GraphQLClient, services: Services
) -> None:
    # JSON's grammar allows "\ud800", but it is not text: MongoDB cannot store it (the real
    # server failed the request as an unexpected error). It is refused as bad JSON, up front.
    response = await create_job_escaped(gql, services, "ds-\ud800", "__typename")
    assert response.status_code == 400
    assert "unpaired surrogate" in response.text and "ds-" in response.text
    jobs = await services.training.find(
        TrainingJobFilter(), TrainingJobOrder.CREATED_DATE_DESC, PageRequest(first=10)
    )
    assert jobs.items == []


async def test_escaped_surrogate_pairs_are_text_and_round_trip(
    gql: GraphQLClient, services: Services
) -> None:
    response = await create_job_escaped(
        gql, services, "ds-\U0001f600", "... on TrainingJob { datasetId }"
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"createTrainingJob": {"datasetId": "ds-\U0001f600"}}
