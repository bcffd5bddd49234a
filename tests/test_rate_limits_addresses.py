"""Rate limits per client address when the server is open (issue 17 item 4): without keys each
client address has its own request and mutation buckets; with keys the bucket is the key's,
wherever its requests come from. Over HTTP, clients of one app with their own addresses; over
WebSocket (a real server on 127.0.0.1), an address's sockets share its bucket."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from graphql_api.app import create_app
from graphql_api.auth.roles import Role
from graphql_api.domain.queries import PageRequest
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import LEGACY_WS, TRANSPORT_WS, Server, ServerLoop
from tests.security_helpers import KEYS, bearer
from tests.test_rate_limits import SLOW, answer, closed_with, refused, start

QUERY = {"query": "{ trainingJobs(first: 1) { totalCount } }"}
ADDRESSES = ("203.0.113.7", "198.51.100.23", "2001:db8::5")


def register(name: str) -> dict[str, Any]:
    return {
        "query": f'mutation {{ registerModelVersion(input: {{modelName: "{name}", '
        'version: "1.0.0", modelType: REGRESSION}) { __typename } }'
    }


@asynccontextmanager
async def clients(
    storage: MongoStorage, keyed: bool, **limits: Any
) -> AsyncIterator[list[httpx.AsyncClient]]:
    settings = Settings(allowed_hosts=["testserver"], feed_poll_interval=60.0, **limits)
    application = create_app(settings, storage=storage, keys=KEYS if keyed else None)
    async with LifespanManager(application), AsyncExitStack() as stack:
        opened = []
        for address in ADDRESSES:
            transport = httpx.ASGITransport(app=application, client=(address, 40000))
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            opened.append(await stack.enter_async_context(client))
        yield opened


@pytest.fixture
async def open_clients(storage: MongoStorage) -> AsyncIterator[list[httpx.AsyncClient]]:
    limits = {
        "rate_limit_requests": SLOW,
        "rate_limit_request_burst": 2,
        "rate_limit_mutations": SLOW,
        "rate_limit_mutation_burst": 1,
    }
    async with clients(storage, keyed=False, **limits) as opened:
        yield opened


@pytest.fixture
async def keyed_clients(storage: MongoStorage) -> AsyncIterator[list[httpx.AsyncClient]]:
    limits = {"rate_limit_requests": SLOW, "rate_limit_request_burst": 2}
    async with clients(storage, keyed=True, **limits) as opened:
        yield opened


async def test_without_keys_each_client_address_has_its_own_request_bucket(
    open_clients: list[httpx.AsyncClient],
) -> None:
    first, *others = open_clients
    for _ in range(2):
        assert (await first.post("/graphql", json=QUERY)).status_code == 200
    refused(await first.post("/graphql", json=QUERY), "requests")
    # The other addresses' buckets are untouched: each gets its whole burst, then 429 too.
    for client in others:
        for _ in range(2):
            assert (await client.post("/graphql", json=QUERY)).status_code == 200
        refused(await client.post("/graphql", json=QUERY), "requests")


async def test_without_keys_each_client_address_has_its_own_mutation_bucket(
    open_clients: list[httpx.AsyncClient], storage: MongoStorage
) -> None:
    first, second, _ = open_clients
    assert (await first.post("/graphql", json=register("a"))).status_code == 200
    refused(await first.post("/graphql", json=register("b")), "mutations")
    assert (await second.post("/graphql", json=register("c"))).status_code == 200
    names = await storage.model_versions.model_names(None, PageRequest(first=100))
    assert sorted(names.items) == ["a", "c"]


async def test_with_keys_the_bucket_is_the_keys_whatever_the_address(
    keyed_clients: list[httpx.AsyncClient],
) -> None:
    first, second, third = keyed_clients
    viewer = bearer(Role.VIEWER)
    assert (await first.post("/graphql", json=QUERY, headers=viewer)).status_code == 200
    assert (await second.post("/graphql", json=QUERY, headers=viewer)).status_code == 200
    # The key's burst is spent, from two addresses: a third address does not get a new one.
    refused(await third.post("/graphql", json=QUERY, headers=viewer), "requests")
    # Another key from that same address still has its own.
    admin = bearer(Role.ADMIN)
    assert (await third.post("/graphql", json=QUERY, headers=admin)).status_code == 200


# Over WebSocket, open: the bucket is the client address's, shared by its connections -----------


async def open_ws(server: Server, protocol: str) -> ClientConnection:
    ws = await connect(server.ws_url, subprotocols=[Subprotocol(protocol)], open_timeout=5)
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
    return ws


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_without_keys_an_addresss_sockets_share_its_bucket(
    server_loop: ServerLoop, protocol: str
) -> None:
    async def connect_storage() -> MongoStorage:
        return MongoStorage.connect(None, f"mltrain_test_{uuid.uuid4().hex[:12]}")

    storage = await server_loop.call(connect_storage())
    settings = Settings(
        graphiql=False,
        feed_poll_interval=60.0,
        rate_limit_requests=SLOW,
        rate_limit_request_burst=3,
    )
    try:
        server = await server_loop.start(settings, storage)
        first, second = await open_ws(server, protocol), await open_ws(server, protocol)
        for ws, op_id in ((first, "1"), (second, "2"), (first, "3")):
            await start(ws, op_id, "{ __typename }", protocol)
            assert (await answer(ws, op_id))["payload"]["data"] == {"__typename": "Query"}
        # The address's three tokens are spent, from two sockets: the next operation on either
        # closes it with 4429.
        await start(second, "4", "{ __typename }", protocol)
        code, reason = await closed_with(second)
        assert code == 4429 and "requests" in reason and "retry after" in reason
        await first.close()
    finally:
        await server_loop.stop_all()
