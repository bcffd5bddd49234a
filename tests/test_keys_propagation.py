"""A key issued or revoked through one instance holds on another over the same database, and
the other's open WebSockets with a revoked key are closed with 4403: two real uvicorn servers
(tests.live_servers), each with its own key directory, over one database on each backend."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import BACKENDS, REAL_URI
from tests.live_servers import LEGACY_WS, TRANSPORT_WS, Server, ServerLoop, eventually
from tests.security_helpers import KEYS, SECRETS

CREATE = """mutation($name: String!, $modelNames: [String!]) {
  createApiKey(name: $name, role: VIEWER, modelNames: $modelNames) {
    ... on CreatedApiKey { secret } ... on Error { code message } } }"""
REVOKE = """mutation($name: String!) { revokeApiKey(name: $name) { __typename } }"""
JOB_UPDATES = "subscription { trainingJobUpdates { kind } }"


class Pair:
    def __init__(self, first: Server, second: Server) -> None:
        self.first = first
        self.second = second
        self.http = httpx.AsyncClient(timeout=10)

    async def post(
        self, server: Server, secret: str, query: str, **variables: Any
    ) -> httpx.Response:
        return await self.http.post(
            server.http_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {secret}"},
        )

    async def admin(self, server: Server, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.post(server, SECRETS[Role.ADMIN], query, **variables)
        data: dict[str, Any] = response.json()["data"]
        return data


@pytest.fixture(params=BACKENDS)
async def pair(request: pytest.FixtureRequest, server_loop: ServerLoop) -> AsyncIterator[Pair]:
    """Two servers over one database: the mock shared in-process, or the real server."""
    name = f"mltrain_test_{uuid.uuid4().hex[:12]}"
    uri = REAL_URI if request.param == "real" else None

    async def connect_storage() -> MongoStorage:
        return MongoStorage.connect(uri, name)

    first_store = await server_loop.call(connect_storage())
    second_store = first_store if uri is None else await server_loop.call(connect_storage())
    entries = ",".join(key.entry() for key in KEYS.keys)
    settings = Settings(graphiql=False, api_keys=entries, feed_poll_interval=60.0)
    servers = Pair(
        await server_loop.start(settings, first_store),
        await server_loop.start(settings, second_store),
    )
    try:
        yield servers
    finally:
        await servers.http.aclose()
        await server_loop.stop_all()
        if uri is not None:

            async def clean_up() -> None:
                await first_store._db.client.drop_database(name)
                for store in (first_store, second_store):
                    await store.close()

            await server_loop.call(clean_up())


async def open_ws(server: Server, secret: str, protocol: str) -> ClientConnection:
    ws = await connect(server.ws_url, subprotocols=[Subprotocol(protocol)], open_timeout=5)
    payload = {"Authorization": f"Bearer {secret}"}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert ack["type"] == "connection_ack", ack
    return ws


async def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code, ws.close_reason or ""


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_revocation_through_one_instance_holds_on_the_other_and_its_websockets(
    pair: Pair, protocol: str
) -> None:
    created = await pair.admin(pair.first, CREATE, name="leaky")
    secret = created["createApiKey"]["secret"]

    async def accepted_by_second() -> bool:
        return (await pair.post(pair.second, secret, "{ __typename }")).status_code == 200

    await eventually(accepted_by_second, what="the second instance to accept the new key")
    sockets = [await open_ws(pair.second, secret, protocol) for _ in range(2)]
    start = "subscribe" if protocol == TRANSPORT_WS else "start"
    await sockets[0].send(json.dumps({"id": "1", "type": start, "payload": {"query": JOB_UPDATES}}))
    bystander = await open_ws(pair.second, SECRETS[Role.VIEWER], protocol)

    assert (await pair.admin(pair.first, REVOKE, name="leaky")) == {
        "revokeApiKey": {"__typename": "ApiKey"}
    }

    async def refused_by_second() -> bool:
        return (await pair.post(pair.second, secret, "{ __typename }")).status_code == 401

    await eventually(refused_by_second, what="the second instance to refuse the revoked key")
    for ws in sockets:
        code, reason = await closed_with(ws)
        assert code == 4403 and "leaky" in reason and "revoked" in reason
    # Other keys' connections stay open.
    await bystander.ping()
    assert bystander.close_code is None
    await bystander.close()
    # A new connection with the revoked key is refused.
    ws = await connect(pair.second.ws_url, subprotocols=[Subprotocol(protocol)], open_timeout=5)
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {secret}"}})
    )
    code, _ = await closed_with(ws)
    assert code == 4401


CREATE_EXPIRING = """mutation($name: String!, $at: DateTime!) {
  createApiKey(name: $name, role: VIEWER, expiresAt: $at) {
    ... on CreatedApiKey { secret } ... on Error { code message } } }"""


async def test_an_expiring_key_closes_its_websockets_on_every_instance(pair: Pair) -> None:
    at = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    secret = (await pair.admin(pair.first, CREATE_EXPIRING, name="brief", at=at))["createApiKey"][
        "secret"
    ]

    async def accepted_by_second() -> bool:
        return (await pair.post(pair.second, secret, "{ __typename }")).status_code == 200

    await eventually(accepted_by_second, what="the second instance to accept the new key")
    sockets = [
        await open_ws(pair.first, secret, TRANSPORT_WS),
        await open_ws(pair.second, secret, TRANSPORT_WS),
    ]
    for ws in sockets:
        code, reason = await closed_with(ws)
        assert code == 4403 and "brief" in reason and "expired" in reason
    for server in (pair.first, pair.second):
        assert (await pair.post(server, secret, "{ __typename }")).status_code == 401
