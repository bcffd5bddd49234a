"""models(filter, first, after) over HTTP: one entry per model name with its latest and
production versions, aliases, version count and last deployment; keyset pages; names
registered before the list existed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import PROMOTE, REGISTER
from tests.registry_operations import SET_ALIAS

MODELS = """
query($first: Int, $after: String, $contains: String) {
  models(first: $first, after: $after, filter: {nameContains: $contains}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      name versionCount lastDeployedDate
      latestVersion { version } productionVersion { version deployedDate }
      aliases { alias modelVersion { version } }
    } }
  }
}"""


async def register(gql: GraphQLClient, name: str, version: str) -> str:
    data = await gql.data(
        REGISTER, input={"modelName": name, "version": version, "modelType": "REGRESSION"}
    )
    return str(data["registerModelVersion"]["modelId"])


async def all_models(gql: GraphQLClient, first: int, **variables: Any) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql.data(MODELS, first=first, after=after, **variables))["models"]
        assert len(page["edges"]) <= first
        nodes.extend(e["node"] for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            assert page["totalCount"] == len(nodes)
            return nodes
        after = page["pageInfo"]["endCursor"]


async def test_each_model_is_listed_once_with_what_a_registry_viewer_shows(
    gql: GraphQLClient,
) -> None:
    tag = uuid.uuid4().hex[:6]
    churn, fraud, empty = f"churn-{tag}", f"fraud-{tag}", f"ranker-{tag}"
    ids = {v: await register(gql, churn, v) for v in ("1.0.0", "1.10.0", "1.9.0")}
    await register(gql, fraud, "0.1.0")
    await register(gql, empty, "3.0.0-rc.1")
    for stage in ("TESTING", "PRODUCTION"):
        await gql.data(PROMOTE, id=ids["1.9.0"], to=stage)
    await gql.data(SET_ALIAS, name=churn, alias="champion", id=ids["1.10.0"], expected=None)
    nodes = await all_models(gql, 100, contains=tag)
    assert [n["name"] for n in nodes] == [churn, fraud, empty]
    first = nodes[0]
    assert first["versionCount"] == 3
    assert first["latestVersion"] == {"version": "1.10.0"}  # precedence, not string order
    assert first["productionVersion"]["version"] == "1.9.0"
    assert first["lastDeployedDate"] == first["productionVersion"]["deployedDate"]
    assert first["aliases"] == [
        {"alias": "champion", "modelVersion": {"version": "1.10.0"}},
        {"alias": "production", "modelVersion": {"version": "1.9.0"}},
    ]
    assert (nodes[1]["versionCount"], nodes[1]["productionVersion"], nodes[1]["aliases"]) == (
        1,
        None,
        [],
    )
    assert nodes[1]["lastDeployedDate"] is None


@pytest.mark.parametrize("first", [1, 7, 100])
async def test_pages_of_models_join_with_no_gap_and_no_duplicate(
    gql: GraphQLClient, first: int
) -> None:
    tag = uuid.uuid4().hex[:6]
    names = sorted(f"m{n:02d}-{tag}" for n in range(23))
    for name in reversed(names):
        await register(gql, name, "1.0.0")
        await register(gql, name, "1.1.0")  # a second version is no second entry
    listed = [n["name"] for n in await all_models(gql, first, contains=tag)]
    assert listed == names
    upper = [n["name"] for n in await all_models(gql, 100, contains=f"M05-{tag.upper()}")]
    assert upper == [f"m05-{tag}"]  # case-insensitive


async def test_bad_arguments_are_refused(gql: GraphQLClient) -> None:
    body = await gql.execute(MODELS, first=5, contains="a\u200bb")
    assert body["errors"][0]["extensions"]["field"] == "filter.nameContains"
    body = await gql.execute(MODELS, first=5, after="not-a-cursor")
    assert body["errors"][0]["extensions"]["rule"] == "cursor"
    versions = await gql.data("{ modelVersions(first: 1) { pageInfo { endCursor } } }")
    cursor = versions["modelVersions"]["pageInfo"]["endCursor"]
    if cursor is not None:  # a cursor of another list is refused
        body = await gql.execute(MODELS, first=5, after=cursor)
        assert body["errors"][0]["extensions"]["rule"] == "cursor"


async def test_names_registered_before_the_list_of_models_appear_after_start_up(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    tag = uuid.uuid4().hex[:6]
    await register(gql, f"legacy-{tag}", "1.0.0")
    # What a database of the previous release has: versions, and no list of models.
    await storage._db["model_catalog"].drop()
    assert await all_models(gql, 10, contains=tag) == []
    await storage.ensure_indexes()
    listed = await all_models(gql, 10, contains=tag)
    assert [(n["name"], n["versionCount"]) for n in listed] == [(f"legacy-{tag}", 1)]
    await storage.ensure_indexes()  # once: nothing doubles
    assert len(await all_models(gql, 10, contains=tag)) == 1
