"""The registry's history over HTTP: ModelVersion.history and modelHistory (who, when, from -> to,
why), paged with no gap and no duplicate, batched, and cursors modelVersionUpdates resumes from."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import pytest

from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.live_fixtures import live_fixture  # noqa: F401 (fixture)
from tests.operations import ARCHIVE, PROMOTE, REGISTER
from tests.registry_operations import ROLLBACK, SET_ALIAS, UPDATE_VERSION
from tests.security_helpers import KEY_NAMES, RoleClient, client, secured_app
from tests.test_subscriptions import Live

CHANGE = """cursor kind modelId version previousStatus status occurredAt actor reason alias
previousModelId"""
MODEL_HISTORY = f"""
query($name: String!, $first: Int, $after: String) {{
  modelHistory(modelName: $name, first: $first, after: $after) {{
    totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {CHANGE} }} }}
  }}
}}"""
VERSION_HISTORY = f"""
query($id: ID!, $first: Int, $after: String) {{
  modelVersion(modelId: $id) {{
    history(first: $first, after: $after) {{
      totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {CHANGE} }} }}
    }}
  }}
}}"""
UPDATES = """
subscription($name: String, $after: String) {
  modelVersionUpdates(modelName: $name, after: $after) {
    cursor kind alias reason previousModelId modelVersion { modelId status }
  }
}"""


class Client(Protocol):
    async def data(self, query: str, **variables: Any) -> dict[str, Any]: ...


async def story(gql: Client, name: str) -> tuple[str, str]:
    """1.0.0 deployed, an alias on 2.0.0, 2.0.0 deployed over 1.0.0, rolled back to 1.0.0,
    2.0.0 described: the changes a registry viewer shows."""
    ids = []
    for version in ("1.0.0", "2.0.0"):
        data = await gql.data(
            REGISTER, input={"modelName": name, "version": version, "modelType": "REGRESSION"}
        )
        ids.append(str(data["registerModelVersion"]["modelId"]))
    old, new = ids
    for model_id in (old, new):
        await gql.data(PROMOTE, id=model_id, to="TESTING")
    await gql.data(PROMOTE, id=old, to="PRODUCTION")
    await gql.data(SET_ALIAS, name=name, alias="challenger", id=new, expected=None)
    await gql.data(PROMOTE, id=new, to="PRODUCTION")
    await gql.data(ROLLBACK, name=name, to=old, reason="latency regression in 2.0.0")
    await gql.data(UPDATE_VERSION, id=new, description="kept for the A/B test")
    return old, new


async def read_all(
    gql: GraphQLClient, query: str, path: tuple[str, ...], first: int, **variables: Any
) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        data: Any = await gql.data(query, first=first, after=after, **variables)
        for key in path:
            data = data[key]
        assert len(data["edges"]) <= first
        assert data["totalCount"] >= len(nodes) + len(data["edges"])
        nodes.extend(edge["node"] for edge in data["edges"])
        assert [e["cursor"] for e in data["edges"]] == [e["node"]["cursor"] for e in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            assert data["totalCount"] == len(nodes)
            return nodes
        after = data["pageInfo"]["endCursor"]


@pytest.fixture
def name() -> str:
    return f"churn-{uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("first", [1, 3, 100])
async def test_model_history_tells_who_when_from_to_and_why_in_log_order(
    gql: GraphQLClient, name: str, first: int
) -> None:
    old, new = await story(gql, name)
    nodes = await read_all(gql, MODEL_HISTORY, ("modelHistory",), first, name=name)
    steps = [
        (n["kind"], n["modelId"], n["previousStatus"], n["status"], n["previousModelId"])
        for n in nodes
    ]
    assert steps == [
        ("REGISTERED", old, None, "DEVELOPMENT", None),
        ("REGISTERED", new, None, "DEVELOPMENT", None),
        ("PROMOTED", old, "DEVELOPMENT", "TESTING", None),
        ("PROMOTED", new, "DEVELOPMENT", "TESTING", None),
        ("DEPLOYED", old, "TESTING", "PRODUCTION", None),
        ("ALIAS_SET", new, "TESTING", "TESTING", None),
        ("DEPLOYED", new, "TESTING", "PRODUCTION", None),
        ("ARCHIVED", old, "PRODUCTION", "ARCHIVED", None),
        ("DEPLOYED", old, "ARCHIVED", "PRODUCTION", new),  # the rollback
        ("ARCHIVED", new, "PRODUCTION", "ARCHIVED", None),
        ("UPDATED", new, "ARCHIVED", "ARCHIVED", None),
    ]
    assert nodes[5]["alias"] == "challenger"
    rollback = nodes[8]
    assert (rollback["reason"], rollback["version"]) == ("latency regression in 2.0.0", "1.0.0")
    times = [n["occurredAt"] for n in nodes]
    assert times == sorted(times)
    assert all(n["actor"] is None for n in nodes)  # open mode: no key, no name


async def test_a_version_history_is_its_own_changes_paged_and_batched(
    gql: GraphQLClient, storage: MongoStorage, name: str
) -> None:
    old, _ = await story(gql, name)
    nodes = await read_all(gql, VERSION_HISTORY, ("modelVersion", "history"), 2, id=old)
    assert [(n["kind"], n["status"]) for n in nodes] == [
        ("REGISTERED", "DEVELOPMENT"),
        ("PROMOTED", "TESTING"),
        ("DEPLOYED", "PRODUCTION"),
        ("ARCHIVED", "ARCHIVED"),
        ("DEPLOYED", "PRODUCTION"),
    ]
    assert all(n["modelId"] == old for n in nodes)
    assert nodes[-1]["reason"] == "latency regression in 2.0.0"
    # A page of versions reads all their histories in one batch.
    before = storage.stats.round_trips
    listed = await gql.data(
        "query($n: [String!]) { modelVersions(filter: {modelNames: $n}) { edges { node {"
        " history(first: 3) { totalCount edges { node { kind } } } } } } }",
        n=[name],
    )
    trips = storage.stats.round_trips - before
    histories = [e["node"]["history"] for e in listed["modelVersions"]["edges"]]
    assert sorted(h["totalCount"] for h in histories) == [5, 6]
    assert trips <= 4, trips  # the page, the histories, the floor, the counts


async def test_history_cursors_are_checked(gql: GraphQLClient, name: str) -> None:
    await story(gql, name)
    for after in ("", "not-a-cursor", "Y2hnOi0x"):
        body = await gql.execute(MODEL_HISTORY, name=name, first=2, after=after)
        assert body["errors"][0]["extensions"]["rule"] == "cursor", body
    body = await gql.execute(MODEL_HISTORY, name=name, first=101)
    assert body["errors"][0]["extensions"]["field"] == "first"
    body = await gql.execute(MODEL_HISTORY, name="bad\u200bname", first=2)
    assert body["errors"][0]["extensions"]["rule"] == "characters"
    empty = await gql.data(MODEL_HISTORY, name=f"{name}-none", first=5)
    assert empty["modelHistory"]["edges"] == [] and empty["modelHistory"]["totalCount"] == 0


@pytest.fixture
async def keyed(storage: MongoStorage) -> Any:
    async with secured_app(storage) as app, client(app) as http:
        yield RoleClient(http)


async def test_history_names_the_key_that_made_each_change(keyed: RoleClient, name: str) -> None:
    from graphql_api.auth.roles import Role

    registered = await keyed.data(
        Role.OPERATOR,
        REGISTER,
        input={"modelName": name, "version": "1.0.0", "modelType": "REGRESSION"},
    )
    model_id = registered["registerModelVersion"]["modelId"]
    await keyed.data(Role.ADMIN, ARCHIVE, id=model_id)
    data = await keyed.data(Role.VIEWER, MODEL_HISTORY, name=name, first=10)
    actors = [e["node"]["actor"] for e in data["modelHistory"]["edges"]]
    assert actors == [KEY_NAMES[Role.OPERATOR], KEY_NAMES[Role.ADMIN]]


async def test_a_history_cursor_resumes_model_version_updates_right_after_it(
    live: Live, name: str
) -> None:
    server = await live.start()
    http = live.http(server)
    old, new = await story(http, name)
    history = await http.data(MODEL_HISTORY, name=name, first=100)
    edges = history["modelHistory"]["edges"]
    rollback_at = next(i for i, e in enumerate(edges) if e["node"]["reason"])
    ws = await live.ws(server)
    op = await ws.subscribe(UPDATES, name=name, after=edges[rollback_at - 1]["cursor"])
    updates = await ws.take(op, len(edges) - rollback_at)
    got = [u["modelVersionUpdates"] for u in updates]
    assert [u["cursor"] for u in got] == [e["cursor"] for e in edges[rollback_at:]]
    assert (got[0]["kind"], got[0]["reason"], got[0]["previousModelId"]) == (
        "DEPLOYED",
        "latency regression in 2.0.0",
        new,
    )
    assert got[0]["modelVersion"] == {"modelId": old, "status": "PRODUCTION"}
    assert await ws.nothing_more(op)
    alias_at = next(i for i, e in enumerate(edges) if e["node"]["alias"])
    op = await ws.subscribe(UPDATES, name=name, after=edges[alias_at - 1]["cursor"])
    (moved,) = await ws.take(op, 1)
    assert (moved["modelVersionUpdates"]["kind"], moved["modelVersionUpdates"]["alias"]) == (
        "ALIAS_SET",
        "challenger",
    )
