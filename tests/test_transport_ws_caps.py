"""Open mode caps WebSocket connections per client address, from the handshake on (idle
sockets that never send connection_init count), and frees the slot when one closes."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import LEGACY_WS, TRANSPORT_WS, Server, ServerLoop
from tests.security_helpers import KEYS, SECRETS

CAP = 3


class Servers:
    def __init__(self, loop: ServerLoop) -> None:
        self.loop = loop

    async def start(self, **settings: Any) -> Server:
        async def connect_storage() -> MongoStorage:
            return MongoStorage.connect(None, f"caps_{uuid.uuid4().hex[:8]}")

        storage = await self.loop.call(connect_storage())
        options = {"feed_poll_interval": 60.0, "max_connections_per_address": CAP, **settings}
        return await self.loop.start(Settings(**options), storage)


@pytest.fixture
async def servers(server_loop: ServerLoop) -> AsyncIterator[Servers]:
    try:
        yield Servers(server_loop)
    finally:
        await server_loop.stop_all()


async def open_socket(
    server: Server,
    source: str = "127.0.0.1",
    protocol: str = TRANSPORT_WS,
    origin: str | None = None,
) -> ClientConnection:
    """A WebSocket from ``source`` (any 127/8 address is this machine), left idle."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", server.port))
    return await connect(
        server.ws_url,
        sock=sock,
        subprotocols=[Subprotocol(protocol)],
        origin=Origin(origin) if origin else None,
        open_timeout=5,
    )


async def refused(server: Server, source: str = "127.0.0.1") -> None:
    with pytest.raises(websockets.InvalidStatus) as refusal:
        await open_socket(server, source)
    response = refusal.value.response
    assert response.status_code == 429
    (error,) = json.loads(response.body)["errors"]
    assert "MLTRAIN_MAX_CONNECTIONS_PER_ADDRESS" in error["message"]
    assert error["extensions"] == {
        "code": "LIMIT_EXCEEDED",
        "limit": "maxConnectionsPerAddress",
        "max": CAP,
    }


async def acknowledged(ws: ClientConnection, payload: dict[str, Any] | None = None) -> None:
    await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_idle_sockets_are_capped_per_address_and_freed_on_close(
    servers: Servers, protocol: str
) -> None:
    server = await servers.start()
    idle = [await open_socket(server, protocol=protocol) for _ in range(CAP)]
    await refused(server)
    await refused(server)
    # Another address is counted on its own.
    other = [await open_socket(server, "127.0.0.2") for _ in range(CAP)]
    await refused(server, "127.0.0.2")
    # Closing one frees its slot (the server sees the close; retry until it has).
    await idle.pop().close()
    for _ in range(200):
        try:
            replacement = await open_socket(server, protocol=protocol)
            break
        except websockets.InvalidStatus:
            await asyncio.sleep(0.01)
    else:
        raise AssertionError("the closed socket's slot was never freed")
    if protocol == TRANSPORT_WS:
        await acknowledged(replacement)
    await refused(server)
    for ws in [*idle, *other, replacement]:
        await ws.close()


async def test_refused_handshakes_do_not_keep_their_slot(servers: Servers) -> None:
    server = await servers.start()
    for _ in range(CAP * 3):
        with pytest.raises(websockets.InvalidStatus):
            await open_socket(server, origin="https://attacker.example")
    sockets = [await open_socket(server) for _ in range(CAP)]
    for ws in sockets:
        await acknowledged(ws)
        await ws.close()


async def test_with_api_keys_the_per_key_cap_applies_instead(servers: Servers) -> None:
    entries = ",".join(key.entry() for key in KEYS.keys)
    server = await servers.start(api_keys=entries, max_connections_per_address=1)
    sockets = []
    for role in (Role.VIEWER, Role.WORKER, Role.OPERATOR):
        ws = await open_socket(server)
        await acknowledged(ws, {"Authorization": f"Bearer {SECRETS[role]}"})
        sockets.append(ws)
    for ws in sockets:
        await ws.close()
