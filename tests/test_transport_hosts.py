"""DNS rebinding: in open mode (no API keys) every route answers only requests addressed to
this machine (localhost, an IP address) or to a configured name; anything else gets 421 with
the reason and changes nothing. With keys the check is off."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from asgi_lifespan import LifespanManager
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from graphql_api.app import create_app
from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import TRANSPORT_WS, Server, ServerLoop
from tests.security_helpers import KEYS, bearer

REBINDING = [
    "rebind.attacker.example",
    "rebind.attacker.example:8000",
    "REBIND.Attacker.Example:8000",
    "localhost.attacker.example",
    "127.0.0.1.nip.io:8000",
    "attacker.example.",
    "localhostx",
    "x-localhost",
    "mltrain.lan.attacker.example",
    "",
    "[::1",
    "evil@127.0.0.1",
]
LOCAL = [
    "localhost",
    "localhost:8000",
    "LOCALHOST:8000",
    "app.localhost:8000",
    "127.0.0.1",
    "127.0.0.1:8000",
    "127.5.6.7:1",
    "[::1]:8000",
    "[::1]",
    "192.168.1.5:8000",  # --allow-open-network clients use the address
    "mltrain.lan:8000",  # configured below
    "box.office.example",  # configured by wildcard
]
CREATE = """mutation { registerModelVersion(input: {modelName: "m", version: "1.0.0",
  modelType: CLASSIFICATION}) { __typename } }"""
COUNT = "{ modelVersions { totalCount } }"


@pytest.fixture
async def app() -> AsyncIterator[Any]:
    settings = Settings(allowed_hosts="mltrain.lan,*.office.example")
    application = create_app(settings, storage=MongoStorage.connect(None, "hosts"))
    async with LifespanManager(application):
        yield application


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


def refused(response: httpx.Response, host: str) -> None:
    assert response.status_code == 421, response.text
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "HOST_NOT_ALLOWED"
    assert "MLTRAIN_ALLOWED_HOSTS" in error["message"] and "DNS rebinding" in error["message"]


@pytest.mark.parametrize("host", REBINDING)
async def test_a_rebinding_name_gets_nothing_and_changes_nothing(app: Any, host: str) -> None:
    async with client(app) as http:
        headers = {"host": host}
        refused(await http.post("/graphql", json={"query": CREATE}, headers=headers), host)
        refused(await http.get("/graphql", params={"query": COUNT}, headers=headers), host)
        refused(await http.get("/graphql", headers={**headers, "accept": "text/html"}), host)
        refused(await http.get("/healthz", headers=headers), host)
        count = await http.post("/graphql", json={"query": COUNT})
    assert count.json() == {"data": {"modelVersions": {"totalCount": 0}}}


@pytest.mark.parametrize("host", LOCAL)
async def test_local_and_configured_hosts_are_served(app: Any, host: str) -> None:
    async with client(app) as http:
        response = await http.post("/graphql", json={"query": COUNT}, headers={"host": host})
        health = await http.get("/healthz", headers={"host": host})
    assert response.status_code == 200, response.text
    assert health.status_code == 200


async def test_a_request_without_host_is_refused(app: Any) -> None:
    # HTTP/1.0 without Host: nothing says the request was meant for this machine.
    scope_headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": json.dumps({"query": COUNT}).encode()}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "http_version": "1.0",
        "method": "POST",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "headers": scope_headers,
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
    }
    await app(scope, receive, send)
    assert messages[0]["status"] == 421


async def test_with_api_keys_the_host_is_not_checked() -> None:
    application = create_app(Settings(), storage=MongoStorage.connect(None, "hosts"), keys=KEYS)
    async with LifespanManager(application), client(application) as http:
        response = await http.post(
            "/graphql",
            json={"query": COUNT},
            headers={"host": "mltrain.example.com", **bearer(Role.VIEWER)},
        )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "hosts", ["http://x.example", "x.example:80", "a.*.example", "**", "*x.example", "a b"]
)
def test_malformed_host_patterns_stop_the_server(hosts: str) -> None:
    with pytest.raises(ValueError, match="invalid host pattern"):
        Settings(allowed_hosts=hosts)


# WebSocket ------------------------------------------------------------------------------------


@pytest.fixture
async def server(server_loop: ServerLoop) -> AsyncIterator[Server]:
    async def connect_storage() -> MongoStorage:
        return MongoStorage.connect(None, f"hosts_{uuid.uuid4().hex[:8]}")

    storage = await server_loop.call(connect_storage())
    try:
        yield await server_loop.start(Settings(feed_poll_interval=60.0), storage)
    finally:
        await server_loop.stop_all()


async def handshake(server: Server, host: str) -> dict[str, Any]:
    """Open a WebSocket addressed to ``host`` (the socket goes to the server on loopback)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    ws = await connect(
        f"ws://{host}/graphql",
        sock=sock,
        subprotocols=[Subprotocol(TRANSPORT_WS)],
        open_timeout=5,
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    await ws.close()
    return message


@pytest.mark.parametrize("host", ["rebind.attacker.example:8000", "localhost.attacker.example"])
async def test_a_websocket_to_a_rebinding_name_is_refused_with_the_reason(
    server: Server, host: str
) -> None:
    with pytest.raises(websockets.InvalidStatus) as refusal:
        await handshake(server, host)
    assert refusal.value.response.status_code == 421
    assert b"MLTRAIN_ALLOWED_HOSTS" in refusal.value.response.body


@pytest.mark.parametrize("host", ["localhost:1", "127.0.0.1:1", "[::1]:1"])
async def test_a_websocket_to_this_machine_is_served(server: Server, host: str) -> None:
    assert await handshake(server, host) == {"type": "connection_ack"}
