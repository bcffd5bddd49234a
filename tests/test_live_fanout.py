"""Fan-out executes a subscription's selection once per event and distinct operation (issue 10
item 4, issue 12 item 6), not once per subscriber.

1,000 subscribers of all jobs used to cost 1,000 executions per event, and the server could not
keep up (bench/README.md). Subscribers that sent the same document with the same variables over
connections of the same role now share one execution per event; any difference (document,
variables, role) is executed apart. Counted with the feed's ``renders.executions``, over real
WebSockets to a real server; every subscriber still gets the whole, right result.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import create_job_id, mutate, register_id, report
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import (
    LEGACY_WS,
    TRANSPORT_WS,
    GraphQLHTTP,
    Server,
    ServerLoop,
    WSClient,
    eventually,
)
from tests.security_helpers import KEYS, SECRETS
from tests.test_subscriptions import (
    CREATE_JOB,
    JOB_UPDATES,
    REGISTER,
    START,
    Live,
)

#: The same subscription, selecting less: a different document.
JOB_STATUS_UPDATES = """
subscription { trainingJobUpdates { cursor status job { jobId status } } }"""


async def executions(live_or_loop: Live | ServerLoop, server: Server) -> int:
    loop = live_or_loop.loop if isinstance(live_or_loop, Live) else live_or_loop
    return await loop.peek(lambda: server.feed.renders.executions)


async def subscribed(
    live: Live, server: Server, count: int, query: str, protocol: str = TRANSPORT_WS, **v: Any
) -> list[tuple[WSClient, str]]:
    """``count`` subscribers, each on its own connection, all with ``query`` and ``v``."""
    subscribers = []
    for _ in range(count):
        client = await live.ws(server, protocol)
        subscribers.append((client, await client.subscribe(query, **v)))
    return subscribers


async def all_receive(subscribers: list[tuple[WSClient, str]], events: int) -> list[Any]:
    """What every subscriber received; each got the same ``events`` results."""
    received = [await client.take(op, events) for client, op in subscribers]
    assert all(got == received[0] for got in received), received
    return received[0]


async def wait_subscribed(live: Live, server: Server, count: int) -> None:
    async def ready() -> bool:
        return await live.loop.peek(lambda: server.feed.subscriber_count) >= count

    await eventually(ready, what=f"{count} subscribers in the feed")


class WatchedJob(NamedTuple):
    """A server with one job and ``count`` subscribers of each of two operations: the job's
    full updates (``full``) and every job's status (``slim``), all in the feed."""

    server: Server
    http: GraphQLHTTP
    job_id: str
    full: list[tuple[WSClient, str]]
    slim: list[tuple[WSClient, str]]


async def watched_job(live: Live, count: int) -> WatchedJob:
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    full = await subscribed(live, server, count, JOB_UPDATES, jobId=job_id)
    slim = await subscribed(live, server, count, JOB_STATUS_UPDATES)
    await wait_subscribed(live, server, 2 * count)
    return WatchedJob(server, http, job_id, full, slim)


@pytest.mark.parametrize(
    ("protocol", "count"), [(TRANSPORT_WS, 1), (TRANSPORT_WS, 6), (LEGACY_WS, 4)]
)
async def test_subscribers_of_the_same_operation_share_one_execution_per_event(
    live: Live, protocol: str, count: int
) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    subscribers = await subscribed(live, server, count, JOB_UPDATES, protocol, jobId=job_id)
    await wait_subscribed(live, server, count)
    before = await executions(live, server)

    await mutate(http, START, id=job_id)
    for step in range(3):
        await report(http, job_id, step)

    got = await all_receive(subscribers, 4)
    assert [u["trainingJobUpdates"]["kind"] for u in got] == ["STARTED"] + ["METRICS_REPORTED"] * 3
    assert [u["trainingJobUpdates"]["job"]["metrics"].get("step") for u in got] == [None, 0, 1, 2]
    # One execution per event, however many subscribers.
    assert await executions(live, server) - before == 4


async def test_different_documents_and_variables_are_executed_apart(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    model_id = await register_id(http)
    watched = await create_job_id(http, model_id)
    other = await create_job_id(http, model_id)
    everything = await subscribed(live, server, 3, JOB_UPDATES)
    one_job = await subscribed(live, server, 2, JOB_UPDATES, jobId=watched)
    statuses_only = await subscribed(live, server, 2, JOB_STATUS_UPDATES)
    await wait_subscribed(live, server, 7)
    before = await executions(live, server)

    await mutate(http, START, id=watched)
    # Three operations (two documents; the same one with other variables) see this event.
    started = (await all_receive(everything, 1))[0]["trainingJobUpdates"]
    assert started["job"]["jobId"] == watched and started["status"] == "RUNNING"
    assert (await all_receive(one_job, 1))[0] == {"trainingJobUpdates": started}
    slim = (await all_receive(statuses_only, 1))[0]["trainingJobUpdates"]
    assert slim == {
        "cursor": started["cursor"],
        "status": "RUNNING",
        "job": {"jobId": watched, "status": "RUNNING"},
    }
    assert await executions(live, server) - before == 3

    # The other job's event: not the one-job subscribers' (their filter), two operations.
    await mutate(http, START, id=other)
    assert (await all_receive(everything, 1))[0]["trainingJobUpdates"]["job"]["jobId"] == other
    assert (await all_receive(statuses_only, 1))[0]["trainingJobUpdates"]["job"]["jobId"] == other
    for client, op in one_job:
        assert await client.nothing_more(op, 0.2)
    assert await executions(live, server) - before == 5


# Roles -------------------------------------------------------------------------------------


@pytest.fixture
async def secured(server_loop: ServerLoop) -> AsyncIterator[tuple[ServerLoop, Server]]:
    async def connect_storage() -> MongoStorage:
        return MongoStorage.connect(None, f"mltrain_test_{uuid.uuid4().hex[:12]}")

    storage = await server_loop.call(connect_storage())
    entries = ",".join(key.entry() for key in KEYS.keys)
    settings = Settings(graphiql=False, api_keys=entries, feed_poll_interval=60.0)
    server = await server_loop.start(settings, storage)
    try:
        yield server_loop, server
    finally:
        await server_loop.stop_all()


async def open_as(server: Server, role: Role) -> WSClient:
    ws = await connect(server.ws_url, subprotocols=[Subprotocol(TRANSPORT_WS)], open_timeout=5)
    auth = {"Authorization": f"Bearer {SECRETS[role]}"}
    await ws.send(json.dumps({"type": "connection_init", "payload": auth}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
    client = WSClient(ws, TRANSPORT_WS)
    client.start_reading()
    return client


async def test_connections_of_different_roles_are_executed_apart(
    secured: tuple[ServerLoop, Server],
) -> None:
    loop, server = secured
    clients = [await open_as(server, role) for role in (Role.VIEWER, Role.VIEWER, Role.ADMIN)]
    clients.append(await open_as(server, Role.ADMIN))
    try:
        ops = [(client, await client.subscribe(JOB_STATUS_UPDATES)) for client in clients]

        async def joined() -> bool:
            return await loop.peek(lambda: server.feed.subscriber_count) == len(ops)

        await eventually(joined, what="every subscriber in the feed")
        before = await executions(loop, server)
        headers = {"Authorization": f"Bearer {SECRETS[Role.ADMIN]}"}
        async with httpx.AsyncClient(timeout=10, headers=headers) as http:

            async def post(query: str, **variables: Any) -> Any:
                response = await http.post(
                    server.http_url, json={"query": query, "variables": variables}
                )
                return next(iter(response.json()["data"].values()))

            model = {"modelName": "roles", "version": "1.0.0", "modelType": "CLASSIFICATION"}
            model_id = (await post(REGISTER, input=model))["modelId"]
            job = await post(CREATE_JOB, input={"modelId": model_id, "datasetId": "d"})
            await post(START, id=job["jobId"])

        got = [await client.take(op, 2) for client, op in ops]
        assert all(g == got[0] for g in got)
        assert [u["trainingJobUpdates"]["status"] for u in got[0]] == ["PENDING", "RUNNING"]
        # Two events, two roles: four executions for four subscribers of one document.
        assert await executions(loop, server) - before == 4
    finally:
        for client in clients:
            await client.close()


RELATION_UPDATES = """
subscription($jobId: ID) {
  trainingJobUpdates(jobId: $jobId) { cursor status job { jobId modelVersion { status } } }
}"""


async def test_a_selection_that_reads_the_database_is_executed_once_for_all(live: Live) -> None:
    # job { modelVersion } is resolved now, through the loaders: the execution awaits a read.
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    subscribers = await subscribed(live, server, 5, RELATION_UPDATES, jobId=job_id)
    await wait_subscribed(live, server, 5)
    before = await executions(live, server)
    reads_before = await live.loop.peek(
        lambda: server.feed.renders.shared + server.feed.groups.stats.written
    )

    await mutate(http, START, id=job_id)

    got = (await all_receive(subscribers, 1))[0]["trainingJobUpdates"]
    assert got["job"] == {"jobId": job_id, "modelVersion": {"status": "DEVELOPMENT"}}
    assert await executions(live, server) - before == 1
    # The other four reused that execution, or got its frame written directly (live/direct.py).
    shared = await live.loop.peek(
        lambda: server.feed.renders.shared + server.feed.groups.stats.written
    )
    assert shared - reads_before == 4
