"""Rate limits (issue 17 item 4): a token bucket per key (per client address without keys) for
requests and one for mutation cost; HTTP 429 with Retry-After, WebSocket close 4429; off by
default. The buckets refill at 0.01 a second in the HTTP and WebSocket tests, so that what the
test sees does not depend on how fast it runs."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from asgi_lifespan import LifespanManager
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from graphql_api.app import create_app
from graphql_api.auth.rate_limit import RateLimiter, TokenBucket, mutation_cost
from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import LEGACY_WS, TRANSPORT_WS, Server, ServerLoop
from tests.security_helpers import KEYS, SECRETS, bearer, snapshot

SLOW = 0.01  # tokens a second: nothing refills while a test runs


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 4, clock=clock)
    assert [limiter.take("k") for _ in range(4)] == [0.0] * 4
    assert limiter.take("k") == pytest.approx(0.5)  # one token comes every 0.5 s
    assert limiter.take("other") == 0.0  # buckets are per holder
    clock.now += 0.5
    assert limiter.take("k") == 0.0
    assert limiter.take("k") == pytest.approx(0.5)
    clock.now += 100  # refills to the burst, no more
    assert [limiter.take("k") for _ in range(5)][-1] == pytest.approx(0.5)
    assert limiter.take("k", cost=5) == math.inf  # more than the bucket holds: never


def test_burst_defaults_to_twice_the_rate_and_zero_is_off() -> None:
    assert RateLimiter(3.0).burst == 6 and RateLimiter(0.1).burst == 1
    off = RateLimiter(0)
    assert not off.enabled and all(off.take("k") == 0.0 for _ in range(1000))


def test_the_table_of_buckets_stays_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 1, clock=clock, max_holders=100)
    for i in range(100):
        limiter.take(f"address:10.0.0.{i}")
    clock.now += 10  # all full again: indistinguishable from new ones, dropped when needed
    for i in range(1000):
        limiter.take(f"address:10.1.{i}")
        clock.now += 1
    assert len(limiter) <= 101


def test_a_refused_take_takes_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=3, tokens=1.0, updated=0.0)
    assert bucket.take(2, 0.0) == pytest.approx(1.0)
    assert bucket.take(1, 0.0) == 0.0


@pytest.mark.parametrize(
    ("query", "name", "cost"),
    [
        ("{ trainingJobs { totalCount } }", None, 0),
        (
            "mutation { a: startTrainingJob(jobId: 1) { __typename } "
            "b: startTrainingJob(jobId: 2) { __typename } __typename }",
            None,
            2,
        ),
        (
            "mutation M { ...F ... on Mutation { cancelTrainingJob(jobId: 3) { __typename } } } "
            "fragment F on Mutation { x: startTrainingJob(jobId: 1) { __typename } "
            "y: startTrainingJob(jobId: 2) { __typename } }",
            None,
            3,
        ),
        ("query Q { __typename } mutation M { startTrainingJob(jobId: 1) { __typename } }", "Q", 0),
        ("query Q { __typename } mutation M { startTrainingJob(jobId: 1) { __typename } }", "M", 1),
        ("mutation {", None, 0),  # does not parse: the normal path reports it
    ],
)
def test_mutation_cost_counts_the_root_fields_that_would_run(
    query: str, name: str | None, cost: int
) -> None:
    assert mutation_cost(query, name, 2000) == cost


# Over HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def limits(request: pytest.FixtureRequest) -> dict[str, Any]:
    value: dict[str, Any] = getattr(request, "param", {})
    return value


@pytest.fixture
async def http(storage: MongoStorage, limits: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The app with these limits; ``keyed: True`` among them configures the test keys."""
    settings = {k: v for k, v in limits.items() if k != "keyed"}
    options: dict[str, Any] = {"allowed_hosts": ["testserver"], "feed_poll_interval": 60.0}
    application = create_app(
        Settings(**options, **settings),
        storage=storage,
        keys=KEYS if limits.get("keyed") else None,
    )
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


QUERY = {"query": "{ trainingJobs(first: 1) { totalCount } }"}


def refused(response: httpx.Response, limit: str) -> None:
    assert response.status_code == 429, response.text
    seconds = int(response.headers["Retry-After"])
    assert seconds >= 1
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "limit": limit, "retryAfter": seconds}
    assert "retry after" in error["message"]


async def test_nothing_is_limited_by_default(http: httpx.AsyncClient) -> None:
    for _ in range(60):
        assert (await http.post("/graphql", json=QUERY)).status_code == 200


@pytest.mark.parametrize(
    "limits", [{"rate_limit_requests": SLOW, "rate_limit_request_burst": 3}], indirect=True
)
async def test_requests_over_the_bucket_get_429_with_retry_after(http: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await http.post("/graphql", json=QUERY)).status_code == 200
    for method in ("post", "get"):
        response = await getattr(http, method)(
            "/graphql", **({"json": QUERY} if method == "post" else {"params": QUERY})
        )
        refused(response, "requests")
    assert int(response.headers["Retry-After"]) == math.ceil(1 / SLOW)


@pytest.mark.parametrize(
    "limits",
    [{"rate_limit_requests": SLOW, "rate_limit_request_burst": 2, "keyed": True}],
    indirect=True,
)
async def test_each_key_has_its_own_bucket(http: httpx.AsyncClient) -> None:
    for _ in range(2):
        response = await http.post("/graphql", json=QUERY, headers=bearer(Role.VIEWER))
        assert response.status_code == 200
    refused(await http.post("/graphql", json=QUERY, headers=bearer(Role.VIEWER)), "requests")
    # Same address, another key: its own bucket.
    assert (await http.post("/graphql", json=QUERY, headers=bearer(Role.ADMIN))).status_code == 200
    # No key: 401 before any bucket.
    assert (await http.post("/graphql", json=QUERY)).status_code == 401


@pytest.mark.parametrize(
    "limits", [{"rate_limit_mutations": SLOW, "rate_limit_mutation_burst": 3}], indirect=True
)
async def test_mutation_cost_over_the_bucket_is_429_and_changes_nothing(
    http: httpx.AsyncClient, storage: MongoStorage
) -> None:
    def register(*names: str) -> dict[str, Any]:
        fields = " ".join(
            f'{n}: registerModelVersion(input: {{modelName: "{n}", version: "1.0.0", '
            f"modelType: REGRESSION}}) {{ __typename }}"
            for n in names
        )
        return {"query": f"mutation {{ {fields} }}"}

    assert (await http.post("/graphql", json=register("a", "b"))).status_code == 200
    before = await snapshot(storage)
    refused(await http.post("/graphql", json=register("c", "d")), "mutations")  # 2 > 1 left
    # Four at once is more than the bucket ever holds: refused, with the reason.
    response = await http.post("/graphql", json=register("e", "f", "g", "h"))
    assert response.status_code == 429 and "split it" in response.text
    assert await snapshot(storage) == before
    # Queries do not spend mutation tokens; one more mutation field still fits.
    assert (await http.post("/graphql", json=QUERY)).status_code == 200
    assert (await http.post("/graphql", json=register("c"))).status_code == 200


# Over WebSocket ------------------------------------------------------------------------------


async def start_server(loop: ServerLoop, **limits: Any) -> Server:
    async def connect_storage() -> MongoStorage:
        return MongoStorage.connect(None, f"mltrain_test_{uuid.uuid4().hex[:12]}")

    storage = await loop.call(connect_storage())
    entries = ",".join(key.entry() for key in KEYS.keys)
    settings = Settings(graphiql=False, api_keys=entries, feed_poll_interval=60.0, **limits)
    return await loop.start(settings, storage)


@pytest.fixture
async def loop(server_loop: ServerLoop) -> AsyncIterator[ServerLoop]:
    try:
        yield server_loop
    finally:
        await server_loop.stop_all()


async def open_ws(server: Server, role: Role, protocol: str) -> ClientConnection:
    ws = await connect(server.ws_url, subprotocols=[Subprotocol(protocol)], open_timeout=5)
    payload = {"Authorization": f"Bearer {SECRETS[role]}"}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
    return ws


async def start(ws: ClientConnection, op_id: str, query: str, protocol: str) -> None:
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    await ws.send(json.dumps({"id": op_id, "type": kind, "payload": {"query": query}}))


async def answer(ws: ClientConnection, op_id: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message.get("id") == op_id:
            return message


async def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code, ws.close_reason or ""


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_operations_over_the_request_bucket_close_the_socket_with_4429(
    loop: ServerLoop, protocol: str
) -> None:
    server = await start_server(loop, rate_limit_requests=SLOW, rate_limit_request_burst=3)
    ws = await open_ws(server, Role.VIEWER, protocol)
    for op_id in ("1", "2", "3"):
        await start(ws, op_id, "{ __typename }", protocol)
        assert (await answer(ws, op_id))["payload"]["data"] == {"__typename": "Query"}
    other = await open_ws(server, Role.ADMIN, protocol)  # another key: unaffected
    await start(ws, "4", "subscription { trainingJobUpdates { kind } }", protocol)
    code, reason = await closed_with(ws)
    assert code == 4429 and "requests" in reason and "retry after" in reason
    await start(other, "1", "{ __typename }", protocol)
    assert (await answer(other, "1"))["payload"]["data"] == {"__typename": "Query"}
    await other.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_mutations_over_the_cost_bucket_close_the_socket_with_4429(
    loop: ServerLoop, protocol: str
) -> None:
    server = await start_server(loop, rate_limit_mutations=SLOW, rate_limit_mutation_burst=1)
    ws = await open_ws(server, Role.ADMIN, protocol)
    mutation = 'mutation { startTrainingJob(jobId: "missing-job") { __typename } }'
    await start(ws, "1", mutation, protocol)
    assert "startTrainingJob" in (await answer(ws, "1"))["payload"]["data"]
    await start(ws, "2", "{ __typename }", protocol)  # queries spend no mutation tokens
    assert (await answer(ws, "2"))["payload"]["data"] == {"__typename": "Query"}
    await start(ws, "3", mutation, protocol)
    code, reason = await closed_with(ws)
    assert code == 4429 and "mutations" in reason
