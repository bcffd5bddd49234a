"""Queries and mutations sent over the WebSocket, in both protocols (issue 10): each gets its
result and then ``complete``, like a subscription that ends, and meets the same checks as over
HTTP: the key's role on every root field, the cost limits. Before, the legacy graphql-ws
protocol answered them "Unexpected error." and logged a traceback. Real uvicorn server,
in-memory storage."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import (
    LEGACY_WS,
    TRANSPORT_WS,
    Server,
    ServerLoop,
    SubscriptionEnded,
    WSClient,
)
from tests.security_helpers import KEYS, SECRETS
from tests.test_limits_cost import chain

PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]

REGISTER = """mutation($name: String!) { registerModelVersion(input: {modelName: $name,
  version: "1.0.0", modelType: CLASSIFICATION}) {
    __typename ... on ModelVersion { modelName } ... on Error { code } } }"""
MODELS = "query { modelVersions(first: 10) { edges { node { modelName } } } }"


@pytest.fixture(scope="module")
def server_loop() -> Iterator[ServerLoop]:
    loop = ServerLoop()
    yield loop
    loop.close()


async def start(loop: ServerLoop, **settings: Any) -> Server:
    async def connect_storage() -> MongoStorage:
        return MongoStorage.connect(None, f"mltrain_test_{uuid.uuid4().hex[:12]}")

    storage = await loop.call(connect_storage())
    options = {"graphiql": False, "feed_poll_interval": 60.0, **settings}
    return await loop.start(Settings(**options), storage)


@pytest.fixture
async def open_server(server_loop: ServerLoop) -> AsyncIterator[Server]:
    try:
        yield await start(server_loop)
    finally:
        await server_loop.stop_all()


@pytest.fixture
async def secured_server(server_loop: ServerLoop) -> AsyncIterator[Server]:
    try:
        yield await start(server_loop, api_keys=",".join(key.entry() for key in KEYS.keys))
    finally:
        await server_loop.stop_all()


async def client(server: Server, protocol: str, role: Role | None = None) -> WSClient:
    """A connection, acknowledged, with ``role``'s key in connection_init (none if None)."""
    ws = await connect(server.ws_url, subprotocols=[Subprotocol(protocol)], open_timeout=5)
    payload = {} if role is None else {"Authorization": f"Bearer {SECRETS[role]}"}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "connection_ack":
        pass
    socket = WSClient(ws, protocol)
    socket.start_reading()
    return socket


async def once(ws: WSClient, query: str, **variables: Any) -> dict[str, Any]:
    """The operation's one result, after which the server completes it."""
    op_id = await ws.subscribe(query, **variables)
    data = await ws.next(op_id)
    with pytest.raises(SubscriptionEnded, match="complete"):
        await ws.next(op_id)
    return data


async def refused(ws: WSClient, query: str, **variables: Any) -> list[dict[str, Any]]:
    op_id = await ws.subscribe(query, **variables)
    with pytest.raises(SubscriptionEnded) as ended:
        await ws.next(op_id)
    return ended.value.errors


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_queries_and_mutations_are_served_over_the_socket(
    open_server: Server, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await client(open_server, protocol)
    try:
        assert await once(ws, "{ __typename }") == {"__typename": "Query"}
        registered = await once(ws, REGISTER, name="over-ws")
        assert registered == {
            "registerModelVersion": {"__typename": "ModelVersion", "modelName": "over-ws"}
        }
        models = await once(ws, MODELS)
        assert models["modelVersions"]["edges"] == [{"node": {"modelName": "over-ws"}}]
    except SubscriptionEnded as error:
        pytest.fail(f"refused: {error.errors}")
    finally:
        await ws.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_several_operations_over_the_socket_still_need_a_name(
    open_server: Server, protocol: str
) -> None:
    ws = await client(open_server, protocol)
    try:
        errors = await refused(ws, "query A { __typename } mutation B { __typename }")
        assert errors[0]["extensions"]["field"] == "operationName"
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_request_errors_over_the_socket_carry_their_codes(
    open_server: Server, protocol: str
) -> None:
    ws = await client(open_server, protocol)
    try:
        updates = "subscription($id: ID!) { trainingJobUpdates(jobId: $id) { __typename } }"
        errors = await refused(ws, updates, id=5.5)
        assert errors[0]["extensions"] == {
            "code": "VALIDATION_ERROR", "field": "$id", "rule": "type"
        }  # fmt: skip
        errors = await refused(ws, "subscription { nope }")
        assert errors[0]["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_key_may_do_over_the_socket_only_what_its_role_may(
    secured_server: Server, protocol: str
) -> None:
    viewer = await client(secured_server, protocol, Role.VIEWER)
    operator = await client(secured_server, protocol, Role.OPERATOR)
    try:
        refusal = await once(viewer, REGISTER, name="by-viewer")
        assert refusal == {
            "registerModelVersion": {"__typename": "ForbiddenError", "code": "FORBIDDEN"}
        }
        assert (await once(viewer, MODELS))["modelVersions"]["edges"] == []  # nothing changed
        done = await once(operator, REGISTER, name="by-operator")
        assert done["registerModelVersion"]["__typename"] == "ModelVersion"
        models = await once(viewer, MODELS)
        assert models["modelVersions"]["edges"] == [{"node": {"modelName": "by-operator"}}]
    finally:
        await viewer.close()
        await operator.close()


HOSTILE = {
    "query, job fragments x2": chain(19),
    "query, fragments on Query": chain(40, on="Query", leaf="__typename", root="query{...F0}"),
    "mutation, fragments on the result": chain(
        19,
        root='mutation{cancelTrainingJob(jobId:"j"){...on TrainingJob{...F0}}}',
    ),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_queries_and_mutations_over_the_socket_are_refused_for_their_cost(
    open_server: Server, protocol: str, name: str
) -> None:
    ws = await client(open_server, protocol)
    try:
        errors = await refused(ws, HOSTILE[name])
        assert [e["extensions"] for e in errors] == [
            {"code": "LIMIT_EXCEEDED", "limit": "maxQueryFields", "max": 1000}
        ]
        assert await once(ws, "{ __typename }") == {"__typename": "Query"}  # still serving
    finally:
        await ws.close()
