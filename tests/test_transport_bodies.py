"""Malformed requests get a 400 in the GraphQL error shape saying what is wrong (WebSocket:
close 4400 with the reason), never a 5xx, a dropped connection or a traceback in the log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from asgi_lifespan import LifespanManager
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from graphql_api.app import create_app
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from graphql_api.wire_json import MAX_NESTING
from tests.live_servers import LEGACY_WS, TRANSPORT_WS, Server, ServerLoop


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # The body is refused before storage is touched: the in-memory backend is enough.
    app = create_app(Settings(), storage=MongoStorage.connect(None, "bodies"))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield http


def nested(depth: int, kind: str) -> str:
    """A JSON value of ``depth`` nested arrays or objects (or both, alternating)."""
    opens, closes = [], []
    for level in range(depth):
        if kind == "array" or (kind == "mixed" and level % 2):
            opens.append("[")
            closes.append("]")
        else:
            opens.append('{"k":')
            closes.append("}")
    return "".join(opens) + "1" + "".join(reversed(closes))


def with_variables(value: str) -> bytes:
    """A query body whose variables hold ``value`` (2 levels: the body and variables)."""
    return ('{"query": "{ __typename }", "variables": {"v": ' + value + "}}").encode()


async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/graphql", content=body, headers={"content-type": "application/json"})


def refused(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    for word in words:
        assert word in error["message"], error["message"]


@pytest.mark.parametrize("kind", ["array", "object", "mixed"])
@pytest.mark.parametrize("depth", [MAX_NESTING - 1, MAX_NESTING + 1, 500, 1_000, 5_000, 50_000])
async def test_deeply_nested_bodies_are_refused_naming_the_bound(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, kind: str, depth: int
) -> None:
    bare = await post(client, nested(depth, kind).encode())
    inside_variables = await post(client, with_variables(nested(depth - 2, kind)))
    if depth <= MAX_NESTING:
        assert inside_variables.status_code == 200, inside_variables.text
        assert inside_variables.json() == {"data": {"__typename": "Query"}}
        refused(bare, "Batching" if kind == "array" else "No GraphQL query")
    else:
        refused(bare, f"deeper than {MAX_NESTING} levels")
        refused(inside_variables, f"deeper than {MAX_NESTING} levels")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_nesting_bound_is_exact(client: httpx.AsyncClient) -> None:
    at_bound = await post(client, with_variables(nested(MAX_NESTING - 2, "object")))
    assert at_bound.status_code == 200, at_bound.text
    refused(await post(client, with_variables(nested(MAX_NESTING - 1, "object"))), "deeper")


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b'"x"', "got a string"),
        (b'""', "got a string"),
        (b"42", "got a number"),
        (b"-1.5e3", "got a number"),
        (b"null", "got null"),
        (b"true", "got a boolean"),
        (b"false", "got a boolean"),
    ],
)
async def test_bodies_that_are_not_objects_are_refused(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, body: bytes, what: str
) -> None:
    refused(await post(client, body), "Expected a JSON object", what)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "{ __typename }", "x": "\xff"}',
        b'{"query": "{ __typename \xc3 }"}',  # a cut-off two-byte character
        b'{"query": "\xed\xa0\x80"}',  # an encoded surrogate: not UTF-8
        b"\xff\xfe{\x00}\x00",  # UTF-16 with its byte-order mark
        b"\x80",
    ],
)
async def test_bodies_that_are_not_utf8_are_refused(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    refused(await post(client, body), "not UTF-8")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "body", [b"[]", b'[{"query": "{ __typename }"}]', b'[{"query": "{ __typename }"}, 1]']
)
async def test_batches_are_refused_as_json(client: httpx.AsyncClient, body: bytes) -> None:
    refused(await post(client, body), "Batching")


@pytest.mark.parametrize(
    ("body", "word"),
    [
        (b"{", "Unable to parse"),
        (b"", "Unable to parse"),
        (b'{"query": 5}', "`query`"),
        (b'{"query": "{ __typename }", "variables": [1]}', "`variables`"),
        (b'{"query": "{ __typename }", "variables": "x"}', "`variables`"),
        (b'{"query": "{ __typename }", "extensions": 5}', "`extensions`"),
        (b"{}", "No GraphQL query"),
    ],
)
async def test_strawberry_refusals_are_json_too(
    client: httpx.AsyncClient, body: bytes, word: str
) -> None:
    refused(await post(client, body), word)


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"variables": "[" * 2_000}, "deeper than"),
        ({"variables": nested(MAX_NESTING + 1, "object")}, "deeper than"),
        ({"variables": "42"}, "got a number"),
        ({"variables": '"x"'}, "got a string"),
        ({"variables": "null"}, "got null"),
        ({"extensions": "[" * 2_000}, "deeper than"),
        ({"variables": "{"}, "Unable to parse"),
    ],
)
async def test_get_query_parameters_follow_the_same_rules(
    client: httpx.AsyncClient, params: dict[str, str], word: str
) -> None:
    response = await client.get(
        "/graphql",
        params={"query": "{ __typename }", **params},
        headers={"accept": "application/json"},
    )
    refused(response, word)


async def test_other_refusals_are_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=b"query=x", headers={"content-type": "text/plain"}
    )
    refused(response, "content type")


# WebSocket ------------------------------------------------------------------------------------


@pytest.fixture
async def server(server_loop: ServerLoop) -> AsyncIterator[Server]:
    async def connect_storage() -> MongoStorage:
        return MongoStorage.connect(None, "bodies_ws")

    storage = await server_loop.call(connect_storage())
    try:
        yield await server_loop.start(Settings(feed_poll_interval=60.0), storage)
    finally:
        await server_loop.stop_all()


async def acknowledged(server: Server, protocol: str) -> ClientConnection:
    ws = await connect(server.ws_url, subprotocols=[Subprotocol(protocol)], open_timeout=5)
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
    return ws


async def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code, ws.close_reason or ""


def subscribe_with(variables: str) -> str:
    query = json.dumps("subscription { trainingJobUpdates { kind } }")
    return (
        '{"type": "subscribe", "id": "1", "payload": {"query": '
        + query
        + ', "variables": {"v": '
        + variables
        + "}}}"
    )


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("[" * 1_000 + "]" * 1_000, "deeper than"),
        (nested(5_000, "object"), "deeper than"),
        (subscribe_with(nested(MAX_NESTING, "mixed")), "deeper than"),
        ('"x"', "got a string"),
        ("42", "got a number"),
        ("null", "got null"),
        ("[]", "got an array"),
        ('[{"type": "ping"}]', "got an array"),
        ("{", "valid JSON"),
    ],
)
async def test_bad_websocket_messages_close_with_4400_and_the_reason(
    server: Server, caplog: pytest.LogCaptureFixture, message: str, reason: str
) -> None:
    ws = await acknowledged(server, TRANSPORT_WS)
    await ws.send(message)
    code, text = await closed_with(ws)
    assert code == 4400
    assert reason in text, text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_message_nested_within_the_bound_is_served(server: Server) -> None:
    ws = await acknowledged(server, TRANSPORT_WS)
    # Subscribe with harmless nested variables (unused by the operation), then ping.
    await ws.send(subscribe_with(nested(MAX_NESTING - 4, "mixed")))
    await ws.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "pong"
    await ws.close()


@pytest.mark.parametrize("message", ["[" * 1_000 + "]" * 1_000, '"x"', "42", "null", "[]"])
async def test_the_legacy_protocol_ignores_bad_messages_and_stays_up(
    server: Server, caplog: pytest.LogCaptureFixture, message: str
) -> None:
    # graphql-ws has no close code for a bad message: it ignores what it cannot parse.
    ws = await acknowledged(server, LEGACY_WS)
    await ws.send(message)
    invalid = {"query": "subscription { noSuchField }"}
    await ws.send(json.dumps({"type": "start", "id": "1", "payload": invalid}))
    answer = {"type": "ka"}
    while answer["type"] == "ka":
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert answer["id"] == "1" and answer["type"] == "error", answer
    await ws.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
