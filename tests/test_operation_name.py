"""A document with several operations must name the one to run (issue 10, item 18).

The GraphQL spec (GetOperation) makes it a request error; Strawberry used to run the first
operation, which could be a mutation the client never meant to send.
"""

from __future__ import annotations

import pytest

from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.security_helpers import snapshot

# MODEL is replaced by a registered version's id: were it run, the job would be created.
CREATE = 'createTrainingJob(input: {modelId: "MODEL", datasetId: "d"}) { __typename }'
REGISTER = """mutation { registerModelVersion(input: {modelName: "m", version: "1.0.0",
  modelType: CLASSIFICATION}) { ... on ModelVersion { modelId } } }"""

SEVERAL = [
    "query A { __typename } query B { trainingJobs { totalCount } }",
    "query A { __typename } mutation B { " + CREATE + " }",
    "mutation B { " + CREATE + " } query A { __typename }",
    "mutation B { " + CREATE + " } mutation C { " + CREATE + " }",
    "query A { __typename } subscription S { trainingJobUpdates { kind } }",
    "{ __typename } query B { __typename }",  # an anonymous one among them (also invalid)
    "query A { ...F } query B { ...F } fragment F on Query { __typename }",
    "query A { __typename } query B { __typename } query C { __typename }",
]


@pytest.mark.parametrize("document", SEVERAL)
async def test_several_operations_without_a_name_are_refused(
    gql: GraphQLClient, storage: MongoStorage, document: str
) -> None:
    model_id = (await gql.data(REGISTER))["registerModelVersion"]["modelId"]
    before = await snapshot(storage)
    body = await gql.execute(document.replace("MODEL", model_id))
    assert body.get("data") is None, body
    named = [e for e in body["errors"] if e.get("extensions", {}).get("field") == "operationName"]
    assert named, body["errors"]
    assert named[0]["extensions"] == {
        "code": "VALIDATION_ERROR",
        "field": "operationName",
        "rule": "required",
    }
    assert "operationName" in named[0]["message"]
    assert await snapshot(storage) == before  # no mutation ran


async def test_the_mutation_of_the_placeholder_would_create_a_job(gql: GraphQLClient) -> None:
    model_id = (await gql.data(REGISTER))["registerModelVersion"]["modelId"]
    data = await gql.data("mutation { " + CREATE.replace("MODEL", model_id) + " }")
    assert data == {"createTrainingJob": {"__typename": "TrainingJob"}}


async def test_a_named_operation_of_several_runs_alone(gql: GraphQLClient) -> None:
    document = "query A { __typename } query B { trainingJobs { totalCount } }"
    response = await gql.http.post("/graphql", json={"query": document, "operationName": "B"})
    assert response.json() == {"data": {"trainingJobs": {"totalCount": 0}}}


async def test_one_operation_needs_no_name(gql: GraphQLClient) -> None:
    assert await gql.data("query A { __typename }") == {"__typename": "Query"}
    assert await gql.data("{ ...F } fragment F on Query { __typename }") == {"__typename": "Query"}
