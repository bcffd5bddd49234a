"""``models { productionVersion latestVersion }`` (issue 14 item 7): a page costs the same
round trips for 3 models as for 12 (batched: the pointers in one read, their holders in one,
names never deployed in one; the latest versions in two), and answers what
``productionModelVersion`` and ``latestModelVersion`` answer."""

from __future__ import annotations

from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import promote, register_id
from tests.conftest import GraphQLClient

MODELS = """query($first: Int) {
  models(first: $first) {
    edges { node { name productionVersion { modelId } latestVersion { modelId } } } } }"""
PRODUCTION = """query($name: String!) {
  productionModelVersion(modelName: $name) { modelId }
  latestModelVersion(modelName: $name) { modelId } }"""


async def page_trips(gql: GraphQLClient, storage: MongoStorage, first: int) -> int:
    before = storage.stats.round_trips
    edges = (await gql.data(MODELS, first=first))["models"]["edges"]
    trips = storage.stats.round_trips - before
    assert len(edges) == first
    for edge in edges:
        node = edge["node"]
        alone = await gql.data(PRODUCTION, name=node["name"])
        assert node["productionVersion"] == alone["productionModelVersion"], node
        assert node["latestVersion"] == alone["latestModelVersion"], node
    return trips


async def test_production_versions_of_a_page_cost_the_same_for_more_models(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    for n in range(12):
        first = await register_id(gql, "1.0.0", f"model-{n:02d}")
        if n % 3 == 0:  # deployed
            await promote(gql, first, "PRODUCTION")
        if n % 3 == 1:  # deployed, then replaced by 1.1.0
            await promote(gql, first, "PRODUCTION")
            second = await register_id(gql, "1.1.0", f"model-{n:02d}")
            await promote(gql, second, "PRODUCTION")
        # n % 3 == 2: never deployed (no pointer)

    few = await page_trips(gql, storage, 3)
    many = await page_trips(gql, storage, 12)
    assert many == few, (few, many)
