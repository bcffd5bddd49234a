"""Rate limits per client address when the server is open (issue 17 item 4): without keys each
client address has its own request and mutation buckets; with keys the bucket is the key's,
wherever its requests come from. Two HTTP clients of one app, each with its own address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.auth.roles import Role
from graphql_api.domain.queries import PageRequest
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.security_helpers import KEYS, bearer
from tests.test_rate_limits import SLOW, refused

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
