"""Cursors are checked for what they are (issue 10, item 17): an empty ``after`` is not "no
cursor", and a cursor of one list is refused by another, each with the typed argument error
``extensions {code: VALIDATION_ERROR, field: after, rule: cursor}`` and nothing else run."""

from __future__ import annotations

import itertools

import pytest

from graphql_api.domain.enums import ModelType
from graphql_api.services.container import Services
from tests.conftest import GraphQLClient

CURSOR_ERROR = {"code": "VALIDATION_ERROR", "field": "after", "rule": "cursor"}

JOB_ORDERS = ["CREATED_DATE_DESC", "CREATED_DATE_ASC"]
VERSION_ORDERS = ["CREATED_DATE_DESC", "CREATED_DATE_ASC", "VERSION_DESC", "VERSION_ASC"]

JOBS = """query($after: String, $order: TrainingJobOrder!) {
  trainingJobs(first: 1, after: $after, orderBy: $order) {
    edges { cursor node { jobId } } pageInfo { endCursor } } }"""
VERSIONS = """query($after: String, $order: ModelVersionOrder!) {
  modelVersions(first: 1, after: $after, orderBy: $order) {
    edges { cursor node { modelId } } pageInfo { endCursor } } }"""


async def seed(services: Services) -> None:
    for minor in range(3):
        version = await services.registry.register(
            model_name="churn", version=f"1.{minor}.0", model_type=ModelType.CLASSIFICATION
        )
        await services.training.create(model_id=version.model_id, dataset_id="d")


def refused(body: dict[str, object], list_name: str) -> str:
    assert body.get("data") is None, body
    errors = body["errors"]
    assert isinstance(errors, list) and len(errors) == 1, errors
    assert errors[0]["extensions"] == CURSOR_ERROR
    assert errors[0]["path"] == [list_name]
    message: str = errors[0]["message"]
    assert message.startswith("after: ")
    return message


@pytest.mark.parametrize(
    ("query", "list_name", "order"),
    [(JOBS, "trainingJobs", order) for order in JOB_ORDERS]
    + [(VERSIONS, "modelVersions", order) for order in VERSION_ORDERS],
)
async def test_an_empty_after_is_refused(
    gql: GraphQLClient, services: Services, query: str, list_name: str, order: str
) -> None:
    await seed(services)
    message = refused(await gql.execute(query, after="", order=order), list_name)
    assert "empty" in message
    inline = query.replace("after: $after", 'after: ""').replace("$after: String, ", "")
    refused(await gql.execute(inline, order=order), list_name)
    # No cursor at all is the first page.
    assert (await gql.data(query, after=None, order=order))[list_name]["edges"]


@pytest.mark.parametrize(
    ("version_order", "job_order"), list(itertools.product(VERSION_ORDERS, JOB_ORDERS))
)
async def test_a_cursor_of_one_list_is_refused_by_the_other(
    gql: GraphQLClient, services: Services, version_order: str, job_order: str
) -> None:
    await seed(services)
    versions = (await gql.data(VERSIONS, order=version_order))["modelVersions"]
    jobs = (await gql.data(JOBS, order=job_order))["trainingJobs"]
    version_cursor = versions["pageInfo"]["endCursor"]
    job_cursor = jobs["pageInfo"]["endCursor"]

    body = await gql.execute(JOBS, after=version_cursor, order=job_order)
    assert "another list" in refused(body, "trainingJobs")
    body = await gql.execute(VERSIONS, after=job_cursor, order=version_order)
    assert "another list" in refused(body, "modelVersions")

    # Each list still takes its own cursors.
    assert (await gql.data(JOBS, after=job_cursor, order=job_order))["trainingJobs"]["edges"]
    page = await gql.data(VERSIONS, after=version_cursor, order=version_order)
    assert page["modelVersions"]["edges"]


async def test_a_cursor_of_another_ordering_of_the_same_list_names_the_ordering(
    gql: GraphQLClient, services: Services
) -> None:
    await seed(services)
    versions = (await gql.data(VERSIONS, order="VERSION_ASC"))["modelVersions"]
    body = await gql.execute(
        VERSIONS, after=versions["pageInfo"]["endCursor"], order="VERSION_DESC"
    )
    assert "another ordering, not VERSION_DESC" in refused(body, "modelVersions")


@pytest.mark.parametrize("forged", ["W10", "WzFd", "eyJhIjoxfQ", "WyJ4Il0", "IiI", "bnVsbA"])
async def test_forged_cursors_are_refused(
    gql: GraphQLClient, services: Services, forged: str
) -> None:
    # [], [1], {"a":1}, ["x"], "", null: valid JSON that is not a cursor.
    await seed(services)
    refused(await gql.execute(JOBS, after=forged, order="CREATED_DATE_DESC"), "trainingJobs")
