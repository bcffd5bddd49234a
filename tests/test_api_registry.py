"""The model registry over HTTP: registering, promoting, archiving, metrics, inference reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.api_helpers import promote, register
from tests.conftest import GraphQLClient
from tests.operations import (
    ARCHIVE,
    MODEL,
    PROMOTE,
    REGISTER,
    UPDATE_MODEL_METRICS,
)


async def all_versions(gql: GraphQLClient) -> list[dict[str, Any]]:
    data = await gql.data(
        "{ modelVersions(first: 100) { edges { node { modelId version status metrics } } } }"
    )
    return [e["node"] for e in data["modelVersions"]["edges"]]


async def test_register_creates_a_development_version_now(gql: GraphQLClient) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    created = await register(gql, metrics={"accuracy": 0.91, "f1": 0.88})
    assert created["__typename"] == "ModelVersion"
    assert created["status"] == "DEVELOPMENT"
    assert created["modelType"] == "CLASSIFICATION"
    assert created["metrics"] == {"accuracy": 0.91, "f1": 0.88}
    assert created["deployedDate"] is None
    assert datetime.fromisoformat(created["createdDate"]) >= before
    assert created["createdDate"].endswith("+00:00")
    fetched = (await gql.data(MODEL, id=created["modelId"]))["modelVersion"]
    assert fetched == {k: v for k, v in created.items() if k != "__typename"}


async def test_client_chosen_model_id_is_kept_and_reuse_is_a_conflict(gql: GraphQLClient) -> None:
    created = await register(gql, modelId="churn-1.0.0")
    assert created["modelId"] == "churn-1.0.0"
    again = await register(gql, modelId="churn-1.0.0", version="1.0.1")
    assert again["__typename"] == "ConflictError"
    assert again["code"] == "CONFLICT" and again["field"] == "modelId"
    assert [v["version"] for v in await all_versions(gql)] == ["1.0.0"]


async def test_name_and_version_are_unique_together(gql: GraphQLClient) -> None:
    await register(gql)
    duplicate = await register(gql)
    assert duplicate["__typename"] == "ConflictError" and duplicate["field"] == "version"
    assert "already has version '1.0.0'" in duplicate["message"]
    other_model = await register(gql, modelName="fraud")
    assert other_model["__typename"] == "ModelVersion"


@pytest.mark.parametrize(
    ("fields", "field", "rule", "fragment"),
    [
        ({"version": "1.0"}, "version", "value_error", "Semantic Versioning"),
        ({"version": "v1.0.0"}, "version", "value_error", "Semantic Versioning"),
        ({"metrics": {"f1": "high"}}, "metrics.f1", "number", "valid number"),
        ({"metrics": {"$gt": 1.0}}, "metrics", "key_dollar", "must not start with '$'"),
        ({"metrics": {"a.b": 1.0}}, "metrics", "key_dot", "must not contain '.'"),
        ({"metrics": [1, 2]}, "metrics", "dict_type", "dictionary"),
        ({"modelName": ""}, "modelName", "min_length", "at least 1"),
        ({"modelId": "has space"}, "modelId", "string_pattern_mismatch", "pattern"),
    ],
)
async def test_bad_registration_is_a_validation_error_and_writes_nothing(
    gql: GraphQLClient, fields: dict[str, Any], field: str, rule: str, fragment: str
) -> None:
    error = await register(gql, **fields)
    assert error["__typename"] == "ValidationError"
    assert error["code"] == "VALIDATION_ERROR"
    assert (error["field"], error["rule"]) == (field, rule)
    assert fragment in error["message"]
    assert await all_versions(gql) == []


async def test_unknown_model_type_is_refused_by_the_schema(gql: GraphQLClient) -> None:
    body = await gql.execute(
        REGISTER, input={"modelName": "m", "version": "1.0.0", "modelType": "CLUSTERING"}
    )
    assert body.get("data") is None
    assert "CLUSTERING" in body["errors"][0]["message"]
    assert await all_versions(gql) == []


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_metrics_are_refused(gql: GraphQLClient, bad: str) -> None:
    # JSON has no NaN; clients that send it anyway (Python's json does) must be refused.
    raw = (
        '{"query": "mutation($i: RegisterModelVersionInput!) { registerModelVersion(input: $i)'
        ' { __typename ... on ValidationError { field message } } }", "variables": {"i": '
        '{"modelName": "m", "version": "1.0.0", "modelType": "REGRESSION", "metrics": {"mse": '
        + bad
        + "}}}}"
    )
    response = await gql.http.post(
        "/graphql", content=raw, headers={"content-type": "application/json"}
    )
    body = response.json()
    if response.status_code == 200 and body.get("data"):
        result = body["data"]["registerModelVersion"]
        assert result["__typename"] == "ValidationError" and result["field"] == "metrics.mse"
    else:
        assert response.status_code == 400
    assert await all_versions(gql) == []


async def test_promotion_walks_development_testing_production(gql: GraphQLClient) -> None:
    created = await register(gql)
    testing = await promote(gql, created["modelId"])
    assert testing["status"] == "TESTING" and testing["deployedDate"] is None
    production = await promote(gql, created["modelId"])
    assert production["status"] == "PRODUCTION"
    assert datetime.fromisoformat(production["deployedDate"]) >= datetime.fromisoformat(
        created["createdDate"]
    )
    beyond = await promote(gql, created["modelId"])
    assert beyond["__typename"] == "InvalidTransitionError"
    assert beyond["currentStatus"] == "PRODUCTION" and beyond["requestedStatus"] is None
    assert "no stage to promote it to" in beyond["message"]


async def test_explicit_target_makes_promotion_safe_to_retry(gql: GraphQLClient) -> None:
    created = await register(gql)
    first = await promote(gql, created["modelId"], to="TESTING")
    assert first["status"] == "TESTING"
    retried = await promote(gql, created["modelId"], to="TESTING")
    assert retried["__typename"] == "InvalidTransitionError"
    assert (retried["currentStatus"], retried["requestedStatus"]) == ("TESTING", "TESTING")
    skip = await register(gql, version="2.0.0")
    refused = await promote(gql, skip["modelId"], to="PRODUCTION")
    assert (refused["currentStatus"], refused["requestedStatus"]) == ("DEVELOPMENT", "PRODUCTION")
    assert (await gql.data(MODEL, id=skip["modelId"]))["modelVersion"]["status"] == "DEVELOPMENT"


async def test_deploying_retires_the_previous_production_version(gql: GraphQLClient) -> None:
    old = await register(gql, version="1.0.0")
    new = await register(gql, version="1.1.0")
    other = await register(gql, modelName="fraud", version="1.0.0")
    for version in (old, new, other):
        await promote(gql, version["modelId"], "TESTING")
    await promote(gql, old["modelId"], "PRODUCTION")
    await promote(gql, other["modelId"], "PRODUCTION")
    deployed = await promote(gql, new["modelId"], "PRODUCTION")
    assert deployed["status"] == "PRODUCTION"
    retired = (await gql.data(MODEL, id=old["modelId"]))["modelVersion"]
    assert retired["status"] == "ARCHIVED"
    assert retired["deployedDate"] is not None  # when it was deployed stays on record
    production = await gql.data(
        'query { churn: productionModelVersion(modelName: "churn") { modelId } '
        'fraud: productionModelVersion(modelName: "fraud") { modelId } '
        'none: productionModelVersion(modelName: "nope") { modelId } }'
    )
    assert production == {
        "churn": {"modelId": new["modelId"]},
        "fraud": {"modelId": other["modelId"]},
        "none": None,
    }


async def test_archive_from_each_live_status_and_never_twice(gql: GraphQLClient) -> None:
    ids = []
    for version, steps in (
        ("1.0.0", []),
        ("1.1.0", ["TESTING"]),
        ("1.2.0", ["TESTING", "PRODUCTION"]),
    ):
        created = await register(gql, version=version)
        for step in steps:
            await promote(gql, created["modelId"], step)
        ids.append(created["modelId"])
    for model_id in ids:
        archived = (await gql.data(ARCHIVE, id=model_id))["archiveModelVersion"]
        assert archived["status"] == "ARCHIVED"
    again = (await gql.data(ARCHIVE, id=ids[0]))["archiveModelVersion"]
    assert again["__typename"] == "InvalidTransitionError"
    assert (again["currentStatus"], again["requestedStatus"]) == ("ARCHIVED", "ARCHIVED")
    promoted = await promote(gql, ids[0])
    assert promoted["__typename"] == "InvalidTransitionError"
    assert (await gql.data('{ productionModelVersion(modelName: "churn") { modelId } }')) == {
        "productionModelVersion": None
    }


async def test_unknown_ids_are_not_found_errors(gql: GraphQLClient) -> None:
    for operation, name in ((PROMOTE, "promoteModelVersion"), (ARCHIVE, "archiveModelVersion")):
        error = (await gql.data(operation, id="missing"))[name]
        assert error["__typename"] == "NotFoundError"
        assert (error["code"], error["resource"], error["id"], error["field"]) == (
            "NOT_FOUND",
            "ModelVersion",
            "missing",
            "modelId",
        )
    error = (await gql.data(UPDATE_MODEL_METRICS, id="missing", metrics={"f1": 0.5}))[
        "updateModelVersionMetrics"
    ]
    assert error["__typename"] == "NotFoundError"
    assert (await gql.data(MODEL, id="missing"))["modelVersion"] is None


async def test_metrics_update_merges_and_archived_versions_are_frozen(gql: GraphQLClient) -> None:
    created = await register(gql, metrics={"accuracy": 0.8, "f1": 0.7})
    updated = (
        await gql.data(
            UPDATE_MODEL_METRICS, id=created["modelId"], metrics={"f1": 0.75, "mse": 0.1}
        )
    )["updateModelVersionMetrics"]
    assert updated["metrics"] == {"accuracy": 0.8, "f1": 0.75, "mse": 0.1}
    bad = (await gql.data(UPDATE_MODEL_METRICS, id=created["modelId"], metrics={"f1": "x"}))[
        "updateModelVersionMetrics"
    ]
    assert bad["__typename"] == "ValidationError" and bad["field"] == "metrics.f1"
    empty = (await gql.data(UPDATE_MODEL_METRICS, id=created["modelId"], metrics={}))[
        "updateModelVersionMetrics"
    ]
    assert empty["__typename"] == "ValidationError" and empty["rule"] == "min_length"
    await gql.data(ARCHIVE, id=created["modelId"])
    frozen = (await gql.data(UPDATE_MODEL_METRICS, id=created["modelId"], metrics={"f1": 0.9}))[
        "updateModelVersionMetrics"
    ]
    assert frozen["__typename"] == "InvalidTransitionError"
    assert "frozen" in frozen["message"]
    assert (await gql.data(MODEL, id=created["modelId"]))["modelVersion"]["metrics"] == {
        "accuracy": 0.8,
        "f1": 0.75,
        "mse": 0.1,
    }


async def test_latest_version_follows_semver_precedence(gql: GraphQLClient) -> None:
    for version in ("1.9.0", "1.10.0", "1.10.0-rc.1", "1.2.0", "0.99.99"):
        await register(gql, version=version)
    await register(gql, modelName="other", version="99.0.0")
    latest = await gql.data('{ latestModelVersion(modelName: "churn") { version } }')
    assert latest["latestModelVersion"] == {"version": "1.10.0"}
    missing = await gql.data('{ latestModelVersion(modelName: "nope") { version } }')
    assert missing["latestModelVersion"] is None
    ordered = await gql.data(
        '{ modelVersions(orderBy: VERSION_DESC, filter: {modelNames: ["churn"]}) '
        "{ edges { node { version } } } }"
    )
    assert [e["node"]["version"] for e in ordered["modelVersions"]["edges"]] == [
        "1.10.0",
        "1.10.0-rc.1",
        "1.9.0",
        "1.2.0",
        "0.99.99",
    ]
