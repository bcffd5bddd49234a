"""API keys over WebSocket: the key in connection_init, refusals that say why, connection and
subscription caps. A real uvicorn server (tests.live_servers) and raw ``websockets`` clients."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import LEGACY_WS, TRANSPORT_WS, Server, ServerLoop, eventually
from tests.security_helpers import KEY_NAMES, KEYS, SECRETS, bearer

JOB_UPDATES = "subscription { trainingJobUpdates { kind status job { jobId } } }"
REGISTER = """mutation($input: RegisterModelVersionInput!) {
  registerModelVersion(input: $input) { ... on ModelVersion { modelId } } }"""
CREATE_JOB = """mutation($input: CreateTrainingJobInput!) {
  createTrainingJob(input: $input) { ... on TrainingJob { jobId } } }"""
START = """mutation($id: ID!) { startTrainingJob(jobId: $id) { __typename } }"""
HISTORY = """query($id: ID!) {
  trainingJob(jobId: $id) { history(first: 10) { edges { node { kind actor } } } } }"""


class Secured:
    def __init__(self, loop: ServerLoop) -> None:
        self.loop = loop

    async def start(self, **settings: Any) -> Server:
        async def connect_storage() -> MongoStorage:
            return MongoStorage.connect(None, f"mltrain_test_{uuid.uuid4().hex[:12]}")

        storage = await self.loop.call(connect_storage())
        entries = ",".join(key.entry() for key in KEYS.keys)
        # feed_poll_interval: see tests.security_helpers.secured_app.
        options = {"graphiql": False, "api_keys": entries, "feed_poll_interval": 60.0, **settings}
        return await self.loop.start(Settings(**options), storage)


@pytest.fixture
async def secured(server_loop: ServerLoop) -> AsyncIterator[Secured]:
    try:
        yield Secured(server_loop)
    finally:
        await server_loop.stop_all()


async def open_ws(
    server: Server, payload: dict[str, Any] | None, protocol: str = TRANSPORT_WS
) -> tuple[ClientConnection, dict[str, Any] | None]:
    """Connect and send connection_init; the ack (or error) message, None if closed first."""
    ws = await connect(server.ws_url, subprotocols=[Subprotocol(protocol)], open_timeout=5)
    await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
    try:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    except websockets.ConnectionClosed:
        return ws, None
    return ws, message


async def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


def key_payload(role: Role) -> dict[str, Any]:
    return {"Authorization": f"Bearer {SECRETS[role]}"}


@pytest.mark.parametrize("payload", [None, {"Authorization": "Bearer mlt_nope"}, {"x": 1}])
async def test_a_connection_without_a_valid_key_is_closed_saying_why(
    secured: Secured, payload: dict[str, Any] | None
) -> None:
    server = await secured.start()
    ws, ack = await open_ws(server, payload)
    assert ack is None
    code, reason = await closed_with(ws)
    assert code == 4401 and "API key" in reason


async def test_the_legacy_protocol_gets_a_connection_error_and_the_reason(
    secured: Secured,
) -> None:
    server = await secured.start()
    ws, message = await open_ws(server, None, LEGACY_WS)
    assert message is not None and message["type"] == "connection_error"
    assert "API key" in message["payload"]["message"]
    code, _ = await closed_with(ws)
    assert code == 4401


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_may_subscribe_and_sees_who_changed_what(
    secured: Secured, role: Role
) -> None:
    server = await secured.start()
    ws, ack = await open_ws(server, key_payload(role))
    assert ack == {"type": "connection_ack"}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": JOB_UPDATES}}))
    # A subscription sees changes from when it is registered: make them after that.
    await eventually(
        lambda: secured.loop.peek(lambda: server.feed.subscriber_count == 1),
        what="the subscription to be registered",
    )
    async with httpx.AsyncClient(headers=bearer(Role.OPERATOR), timeout=10) as http:
        model = await http.post(
            server.http_url,
            json={
                "query": REGISTER,
                "variables": {
                    "input": {"modelName": "m", "version": "1.0.0", "modelType": "PREDICTION"}
                },
            },
        )
        model_id = model.json()["data"]["registerModelVersion"]["modelId"]
        await http.post(
            server.http_url,
            json={
                "query": CREATE_JOB,
                "variables": {"input": {"modelId": model_id, "datasetId": "d", "jobId": "job-1"}},
            },
        )
    async with httpx.AsyncClient(headers=bearer(Role.WORKER), timeout=10) as http:
        started = await http.post(
            server.http_url, json={"query": START, "variables": {"id": "job-1"}}
        )
        assert started.json()["data"]["startTrainingJob"]["__typename"] == "TrainingJob"
    seen = []
    for _ in range(2):
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["type"] == "next", message
        update = message["payload"]["data"]["trainingJobUpdates"]
        seen.append((update["job"]["jobId"], update["kind"]))
    assert seen == [("job-1", "CREATED"), ("job-1", "STARTED")]
    # Who made each change: the name of the key it was made with, as anyone may read it.
    async with httpx.AsyncClient(headers=bearer(role), timeout=10) as http:
        history = await http.post(
            server.http_url, json={"query": HISTORY, "variables": {"id": "job-1"}}
        )
    edges = history.json()["data"]["trainingJob"]["history"]["edges"]
    assert [(e["node"]["kind"], e["node"]["actor"]) for e in edges] == [
        ("CREATED", KEY_NAMES[Role.OPERATOR]),
        ("STARTED", KEY_NAMES[Role.WORKER]),
    ]
    await ws.close()


async def test_a_key_with_a_bare_secret_and_any_header_case_is_accepted(secured: Secured) -> None:
    server = await secured.start()
    ws, ack = await open_ws(server, {"authorization": SECRETS[Role.VIEWER]})
    assert ack == {"type": "connection_ack"}
    await ws.close()


async def test_connections_per_key_are_capped(secured: Secured) -> None:
    server = await secured.start(max_connections_per_key=2)
    first, _ = await open_ws(server, key_payload(Role.VIEWER))
    second, _ = await open_ws(server, key_payload(Role.VIEWER))
    third, ack = await open_ws(server, key_payload(Role.VIEWER))
    assert ack is None
    code, reason = await closed_with(third)
    assert code == 4429 and "MLTRAIN_MAX_CONNECTIONS_PER_KEY" in reason
    other_key, ack = await open_ws(server, key_payload(Role.WORKER))  # a cap per key
    assert ack == {"type": "connection_ack"}
    await first.close()
    # The server counts the close once its handler has ended, a moment after the closing
    # handshake: until then a new connection may still be refused, never after.
    reopened: list[ClientConnection] = []

    async def accepted_again() -> bool:
        ws, ack = await open_ws(server, key_payload(Role.VIEWER))
        if ack == {"type": "connection_ack"}:
            reopened.append(ws)
            return True
        assert ack is None and (await closed_with(ws))[0] == 4429
        return False

    await eventually(accepted_again, what="a connection accepted once one of the key's closed")
    for ws in (second, other_key, *reopened):
        await ws.close()


async def test_subscriptions_per_connection_are_capped(secured: Secured) -> None:
    server = await secured.start(max_subscriptions_per_connection=2)
    ws, _ = await open_ws(server, key_payload(Role.VIEWER))
    for op_id in ("1", "2", "3"):
        await ws.send(
            json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": JOB_UPDATES}})
        )
    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert message["type"] == "error" and message["id"] == "3"
    error = message["payload"][0]
    assert error["extensions"] == {
        "code": "LIMIT_EXCEEDED",
        "limit": "maxSubscriptionsPerConnection",
        "max": 2,
    }
    await ws.close()


async def test_a_browser_page_from_an_origin_not_allowed_cannot_connect(secured: Secured) -> None:
    server = await secured.start(allowed_origins=["https://monitor.example.com"])
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(
            server.ws_url,
            subprotocols=[Subprotocol(TRANSPORT_WS)],
            origin=Origin("https://evil.example.com"),
            open_timeout=5,
        )
    assert refused.value.response.status_code == 403
    ws = await connect(
        server.ws_url,
        subprotocols=[Subprotocol(TRANSPORT_WS)],
        origin=Origin("https://monitor.example.com"),
        open_timeout=5,
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": key_payload(Role.VIEWER)}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "connection_ack"}
    await ws.close()


async def test_a_message_with_an_unpaired_surrogate_escape_closes_the_connection(
    secured: Secured,
) -> None:
    # The same rule as for HTTP bodies (tests/test_errors.py): such a string is not text.
    server = await secured.start()
    ws, ack = await open_ws(server, {"authorization": SECRETS[Role.VIEWER]})
    assert ack == {"type": "connection_ack"}
    query = json.dumps("subscription($id: ID) { trainingJobUpdates(jobId: $id) { kind } }")
    await ws.send(
        '{"type": "subscribe", "id": "1", "payload": {"query": ' + query + ", "
        '"variables": {"id": "job-\\ud800"}}}'
    )
    code, reason = await closed_with(ws)
    assert code == 4400
    assert reason.startswith("WebSocket message must be valid JSON: strings must be Unicode text")
