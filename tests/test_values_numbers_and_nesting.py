"""Metric numbers keep their JSON type (item 13), hyperparameters nest 8 levels as documented
(item 15), and an archived version takes no new training jobs (item 20)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from graphql_api.demo import seed_demo
from graphql_api.domain.queries import PageRequest, TrainingJobFilter, TrainingJobOrder
from graphql_api.services.container import Services
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import register, running_job
from tests.conftest import GraphQLClient
from tests.operations import (
    ARCHIVE,
    COMPLETE,
    CREATE_JOB,
    JOB,
    MODEL,
    PROMOTE,
    REPORT,
    START,
    UPDATE_MODEL_METRICS,
)


async def raw(gql: GraphQLClient, query: str, **variables: Any) -> str:
    """The response body as sent: JSON distinguishes 4 from 4.0 in its text."""
    response = await gql.http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200
    return response.text


# Item 13 ---------------------------------------------------------------------------------

SENT_AND_KEPT = {
    "epoch": 4,
    "step": 0,
    "loss": 0.31,
    "whole_float": 4.0,
    "neg": -7,
    "big": 2**53 + 1,
}


def assert_types_kept(metrics: dict[str, Any]) -> None:
    for key, value in SENT_AND_KEPT.items():
        assert metrics[key] == value and type(metrics[key]) is type(value), (key, metrics[key])


async def test_the_readme_example_reports_an_integer_epoch_and_reads_it_back(
    gql: GraphQLClient,
) -> None:
    job_id = await running_job(gql)
    # Literally the README's mutation: inline literals, not variables.
    document = (
        'mutation { reportTrainingMetrics(jobId: "JOB", metrics: {loss: 0.31, epoch: 4}) '
        "{ ... on TrainingJob { status metrics } ... on Error { code message } } }"
    ).replace("JOB", job_id)
    body = await raw(gql, document)
    assert '"epoch":4' in body.replace(" ", "") and '"epoch":4.0' not in body.replace(" ", "")
    metrics = json.loads(body)["data"]["reportTrainingMetrics"]["metrics"]
    assert metrics == {"loss": 0.31, "epoch": 4} and isinstance(metrics["epoch"], int)
    read_back = await raw(gql, JOB, id=job_id)
    assert '"epoch":4,' in read_back.replace(" ", "") or '"epoch":4}' in read_back.replace(" ", "")


async def test_every_metric_path_keeps_integers_and_floats_apart(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    reported = (await gql.data(REPORT, id=job_id, metrics=SENT_AND_KEPT))["reportTrainingMetrics"]
    assert_types_kept(reported["metrics"])
    done = (await gql.data(COMPLETE, id=job_id, metrics={"final_epoch": 10}))["completeTrainingJob"]
    assert_types_kept(done["metrics"])
    assert type(done["metrics"]["final_epoch"]) is int
    assert_types_kept((await gql.data(JOB, id=job_id))["trainingJob"]["metrics"])

    model = await register(gql, version="2.0.0", metrics=SENT_AND_KEPT)
    assert_types_kept(model["metrics"])
    updated = (await gql.data(UPDATE_MODEL_METRICS, id=model["modelId"], metrics={"n": 3}))[
        "updateModelVersionMetrics"
    ]
    assert updated["metrics"]["n"] == 3 and type(updated["metrics"]["n"]) is int
    assert_types_kept((await gql.data(MODEL, id=model["modelId"]))["modelVersion"]["metrics"])


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (2**63, "int64"),
        (-(2**63) - 1, "int64"),
        (True, "number"),
        ("4", "number"),
        (None, "number"),
    ],
)
async def test_numbers_a_metric_cannot_hold_are_refused(
    gql: GraphQLClient, value: Any, rule: str
) -> None:
    job_id = await running_job(gql)
    result = (await gql.data(REPORT, id=job_id, metrics={"epoch": value}))["reportTrainingMetrics"]
    assert result["__typename"] == "ValidationError"
    assert (result["field"], result["rule"]) == ("metrics.epoch", rule)


async def test_demo_data_reports_whole_epochs_as_integers(storage: MongoStorage) -> None:
    services = Services.over(storage)
    await seed_demo(services)
    page = await services.training.find(
        TrainingJobFilter(), TrainingJobOrder.CREATED_DATE_DESC, PageRequest(first=100)
    )
    epochs = [job.metrics["epoch"] for job in page.items if "epoch" in job.metrics]
    assert epochs and all(type(epoch) is int for epoch in epochs)


# Item 15 ---------------------------------------------------------------------------------


def nested(levels: int, leaf: Any = 1, arrays: bool = False) -> Any:
    """``levels`` containers inside each other, the outermost being the hyperparameters."""
    value = leaf
    for level in range(levels - 1, 0, -1):
        value = [value] if arrays and level % 2 else {f"l{level}": value}
    return {"l0": value} if levels >= 1 else value


@pytest.mark.parametrize("arrays", [False, True], ids=["objects", "objects-and-arrays"])
@pytest.mark.parametrize("leaf", [1, "adamw", None, [], {}], ids=["int", "str", "null", "[]", "{}"])
async def test_hyperparameters_nest_eight_levels_as_documented(
    gql: GraphQLClient, arrays: bool, leaf: Any
) -> None:
    model = await register(gql)
    # An empty container as the leaf is itself a level: 7 around it make 8.
    levels = 7 if isinstance(leaf, list | dict) else 8
    params = nested(levels, leaf, arrays)
    created = (
        await gql.data(
            CREATE_JOB,
            input={"modelId": model["modelId"], "datasetId": "d", "hyperparameters": params},
        )
    )["createTrainingJob"]
    assert created["__typename"] == "TrainingJob", created
    assert created["hyperparameters"] == params


@pytest.mark.parametrize("levels", [9, 12, 40])
@pytest.mark.parametrize("arrays", [False, True], ids=["objects", "objects-and-arrays"])
async def test_a_ninth_level_is_refused_naming_its_path_once(
    gql: GraphQLClient, levels: int, arrays: bool
) -> None:
    model = await register(gql)
    params = nested(levels, 1, arrays)
    result = (
        await gql.data(
            CREATE_JOB,
            input={"modelId": model["modelId"], "datasetId": "d", "hyperparameters": params},
        )
    )["createTrainingJob"]
    assert result["__typename"] == "ValidationError" and result["rule"] == "max_depth"
    field = result["field"]
    assert field.startswith("hyperparameters.l0") and field.count("hyperparameters") == 1
    # The path of the 9th container: 8 steps below the hyperparameters object.
    steps = field.removeprefix("hyperparameters").replace("[", ".[").strip(".").split(".")
    assert len(steps) == 8
    assert result["message"] == (
        f"{field}: objects and arrays nest at most 8 levels deep "
        "(the hyperparameters object is level 1)"
    )
    assert not result["message"].startswith("hyperparameters: hyperparameters")


# Item 20 ---------------------------------------------------------------------------------


async def test_a_job_for_an_archived_version_is_refused_and_writes_nothing(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    model = await register(gql)
    await gql.data(ARCHIVE, id=model["modelId"])
    head = await storage.events.head()
    refused = (
        await gql.data(
            CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "d", "jobId": "j1"}
        )
    )["createTrainingJob"]
    assert refused["__typename"] == "ConflictError" and refused["field"] == "modelId"
    assert "archived" in refused["message"]
    assert (await gql.data(JOB, id="j1"))["trainingJob"] is None
    assert await storage.events.head() == head


@pytest.mark.parametrize("stage", ["DEVELOPMENT", "TESTING", "PRODUCTION"])
async def test_jobs_are_created_for_every_live_stage(gql: GraphQLClient, stage: str) -> None:
    model = await register(gql)
    for step in ["TESTING", "PRODUCTION"][: ["DEVELOPMENT", "TESTING", "PRODUCTION"].index(stage)]:
        await gql.data(PROMOTE, id=model["modelId"], to=step)
    created = (await gql.data(CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "d"}))[
        "createTrainingJob"
    ]
    assert created["__typename"] == "TrainingJob"


async def test_jobs_created_before_the_archive_carry_on(gql: GraphQLClient) -> None:
    model = await register(gql)
    job = (await gql.data(CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "d"}))[
        "createTrainingJob"
    ]
    await gql.data(ARCHIVE, id=model["modelId"])
    started = (await gql.data(START, id=job["jobId"]))["startTrainingJob"]
    assert started["status"] == "RUNNING"
