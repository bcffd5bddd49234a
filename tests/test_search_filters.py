"""Search (issue 14 item 8): filters by tags, name substring, metric bounds and hyperparameter
values, through the API on both backends, and their input checks."""

from __future__ import annotations

from typing import Any

import pytest

from tests import operations as ops
from tests.api_helpers import create_job_id, mutate, register_id
from tests.conftest import GraphQLClient

VERSIONS = """
query($filter: ModelVersionFilter, $first: Int) {
  modelVersions(filter: $filter, first: $first) {
    totalCount edges { node { modelId } }
  }
}"""

JOBS = """
query($filter: TrainingJobFilter, $first: Int) {
  trainingJobs(filter: $filter, first: $first) {
    totalCount edges { node { jobId } }
  }
}"""


async def version_ids(gql: GraphQLClient, **filter: Any) -> list[str]:
    data = (await gql.data(VERSIONS, filter=filter, first=100))["modelVersions"]
    ids = [edge["node"]["modelId"] for edge in data["edges"]]
    assert data["totalCount"] == len(ids)
    return sorted(ids)


async def job_ids(gql: GraphQLClient, **filter: Any) -> list[str]:
    data = (await gql.data(JOBS, filter=filter, first=100))["trainingJobs"]
    ids = [edge["node"]["jobId"] for edge in data["edges"]]
    assert data["totalCount"] == len(ids)
    return sorted(ids)


def tag(key: str, value: str) -> dict[str, str]:
    return {"key": key, "value": value}


async def test_versions_by_tags_all_conditions_any_value(gql: GraphQLClient) -> None:
    fraud = await register_id(
        gql, "1.0.0", "churn", tags=[tag("team", "fraud"), tag("stage", "canary")]
    )
    risk = await register_id(gql, "1.1.0", "churn", tags=[tag("team", "risk")])
    # A tag key with the value of another tag must not match: key and value of ONE tag.
    crossed = await register_id(gql, "1.2.0", "churn", tags=[tag("team", "x"), tag("y", "fraud")])
    await register_id(gql, "1.3.0", "churn")

    assert await version_ids(gql, tags=[{"key": "team", "values": ["fraud"]}]) == [fraud]
    assert await version_ids(gql, tags=[{"key": "team", "values": ["fraud", "risk"]}]) == sorted(
        [fraud, risk]
    )
    both = [{"key": "team", "values": ["fraud", "risk"]}, {"key": "stage", "values": ["canary"]}]
    assert await version_ids(gql, tags=both) == [fraud]
    assert await version_ids(gql, tags=[{"key": "y", "values": ["x"]}]) == []
    assert crossed in await version_ids(gql, tags=[{"key": "y", "values": ["fraud"]}])


async def test_versions_by_name_substring_ignoring_case(gql: GraphQLClient) -> None:
    churn = await register_id(gql, "1.0.0", "Churn-EU")
    fraud = await register_id(gql, "1.0.0", "fraud")
    # Regex characters are literal: "." matches only a dot.
    dotted = await register_id(gql, "1.0.0", "a.b")
    await register_id(gql, "1.0.0", "axb")

    assert await version_ids(gql, nameContains="churn") == [churn]
    assert await version_ids(gql, nameContains="AU") == [fraud]
    assert await version_ids(gql, nameContains=".") == [dotted]
    # Combined with modelNames (both conditions hold).
    assert await version_ids(gql, nameContains="u", modelNames=["fraud"]) == [fraud]


async def test_versions_and_jobs_by_metric_bounds(gql: GraphQLClient) -> None:
    low = await register_id(gql, "1.0.0", metrics={"val_acc": 0.5, "loss": 3})
    high = await register_id(gql, "1.1.0", metrics={"val_acc": 0.9})
    edge = await register_id(gql, "1.2.0", metrics={"val_acc": 1})  # an integer value
    await register_id(gql, "1.3.0")  # no metrics: matches no metric condition

    def acc(**bounds: float) -> list[dict[str, Any]]:
        return [{"key": "val_acc", **bounds}]

    assert await version_ids(gql, metrics=acc(gt=0.5)) == sorted([high, edge])
    assert await version_ids(gql, metrics=acc(gte=0.5, lt=1)) == sorted([low, high])
    assert await version_ids(gql, metrics=acc(lte=1.0, gt=0.9)) == [edge]
    two = [*acc(gte=0), {"key": "loss", "gte": 3}]
    assert await version_ids(gql, metrics=two) == [low]

    job = await create_job_id(gql, low)
    await mutate(gql, ops.START, id=job)
    await mutate(gql, ops.REPORT, id=job, metrics={"loss": 0.25})
    other = await create_job_id(gql, low)
    assert await job_ids(gql, metrics=[{"key": "loss", "lt": 0.3}]) == [job]
    assert await job_ids(gql, metrics=[{"key": "loss", "gt": 0.3}]) == []
    assert other in await job_ids(gql, modelIds=[low])


async def test_jobs_by_hyperparameter_paths(gql: GraphQLClient) -> None:
    version = await register_id(gql)
    adam = await create_job_id(
        gql,
        version,
        hyperparameters={"optimizer": {"name": "adam", "lr": 0.001}, "epochs": 10, "amp": True},
    )
    sgd = await create_job_id(
        gql, version, hyperparameters={"optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 10.0}
    )
    tagged = await create_job_id(gql, version, hyperparameters={"layers": [64, 128]})

    def hp(path: str, eq: Any) -> list[dict[str, Any]]:
        return [{"path": path, "eq": eq}]

    assert await job_ids(gql, hyperparameters=hp("optimizer.name", "adam")) == [adam]
    assert await job_ids(gql, hyperparameters=hp("optimizer.lr", 0.1)) == [sgd]
    assert await job_ids(gql, hyperparameters=hp("epochs", 10)) == sorted([adam, sgd])
    assert await job_ids(gql, hyperparameters=hp("amp", True)) == [adam]
    assert await job_ids(gql, hyperparameters=hp("layers", 128)) == [tagged]
    # A string that looks like an operator or a pattern is a plain value.
    assert await job_ids(gql, hyperparameters=hp("optimizer.name", "^a")) == []
    both = [*hp("optimizer.name", "sgd"), *hp("epochs", 10)]
    assert await job_ids(gql, hyperparameters=both) == [sgd]


BAD_VERSION_FILTERS: list[tuple[dict[str, Any], str, str]] = [
    ({"tags": [{"key": "", "values": ["a"]}]}, "filter.tags[0].key", "min_length"),
    ({"tags": [{"key": "team", "values": []}]}, "filter.tags[0].values", "min"),
    ({"tags": [{"key": "t", "values": ["a\nb"]}]}, "filter.tags[0].values[0]", "characters"),
    (
        {"tags": [{"key": f"k{n}", "values": ["v"]} for n in range(11)]},
        "filter.tags",
        "max_items",
    ),
    ({"nameContains": ""}, "filter.nameContains", "min_length"),
    ({"metrics": [{"key": "acc"}]}, "filter.metrics[0]", "required"),
    ({"metrics": [{"key": "", "gt": 1}]}, "filter.metrics[0].key", "min_length"),
    ({"metrics": [{"key": "a.b", "gt": 1}]}, "filter.metrics[0].key", "key_dot"),
    ({"metrics": [{"key": "$where", "gt": 1}]}, "filter.metrics[0].key", "key_dollar"),
    ({"metrics": [{"key": "a", "gt": 1, "gte": 1}]}, "filter.metrics[0]", "range"),
    ({"metrics": [{"key": "a", "lt": 1, "lte": 1}]}, "filter.metrics[0]", "range"),
    ({"metrics": [{"key": "a", "gt": 2, "lt": 1}]}, "filter.metrics[0]", "range"),
    (
        {"metrics": [{"key": f"k{n}", "gt": 0} for n in range(11)]},
        "filter.metrics",
        "max_items",
    ),
]

BAD_JOB_FILTERS: list[tuple[dict[str, Any], str, str]] = [
    ({"hyperparameters": [{"path": "", "eq": 1}]}, "filter.hyperparameters[0].path", "min_length"),
    (
        {"hyperparameters": [{"path": "a..b", "eq": 1}]},
        "filter.hyperparameters[0].path",
        "min_length",
    ),
    (
        {"hyperparameters": [{"path": "a.", "eq": 1}]},
        "filter.hyperparameters[0].path",
        "min_length",
    ),
    (
        {"hyperparameters": [{"path": "$gt", "eq": 1}]},
        "filter.hyperparameters[0].path",
        "key_dollar",
    ),
    (
        {"hyperparameters": [{"path": ".".join("abcdefghi"), "eq": 1}]},
        "filter.hyperparameters[0].path",
        "max_depth",
    ),
    (
        {"hyperparameters": [{"path": "a", "eq": {"$gt": 1}}]},
        "filter.hyperparameters[0].eq",
        "json",
    ),
    ({"hyperparameters": [{"path": "a", "eq": [1]}]}, "filter.hyperparameters[0].eq", "json"),
    ({"hyperparameters": [{"path": "a", "eq": 2**63}]}, "filter.hyperparameters[0].eq", "int64"),
    (
        {"hyperparameters": [{"path": f"k{n}", "eq": 1} for n in range(11)]},
        "filter.hyperparameters",
        "max_items",
    ),
    ({"metrics": [{"key": "loss"}]}, "filter.metrics[0]", "required"),
]


def assert_refused(body: dict[str, Any], field: str, rule: str) -> None:
    assert body.get("data") is None or not any(body["data"].values()), body
    (error,) = body["errors"]
    extensions = error["extensions"]
    assert (extensions["code"], extensions["field"], extensions["rule"]) == (
        "VALIDATION_ERROR",
        field,
        rule,
    ), error
    assert field.rsplit(".", 1)[-1].split("[")[0] in error["message"] or field in error["message"]


@pytest.mark.parametrize(("filter", "field", "rule"), BAD_VERSION_FILTERS)
async def test_bad_version_search_is_refused_naming_field_and_rule(
    gql: GraphQLClient, filter: dict[str, Any], field: str, rule: str
) -> None:
    body = await gql.execute(VERSIONS, filter=filter, first=5)
    assert_refused(body, field, rule)


@pytest.mark.parametrize(("filter", "field", "rule"), BAD_JOB_FILTERS)
async def test_bad_job_search_is_refused_naming_field_and_rule(
    gql: GraphQLClient, filter: dict[str, Any], field: str, rule: str
) -> None:
    body = await gql.execute(JOBS, filter=filter, first=5)
    assert_refused(body, field, rule)


async def test_null_is_no_hyperparameter_value(gql: GraphQLClient) -> None:
    # eq is JSON! in the schema: null is refused before any resolver runs.
    body = await gql.execute(JOBS, filter={"hyperparameters": [{"path": "a", "eq": None}]})
    assert body["data"] is None and "hyperparameters[0].eq" in body["errors"][0]["message"]
