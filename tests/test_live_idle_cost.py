"""What an idle subscriber holds on the server (issue 12 item 6: memory per idle subscriber).

Counted, not timed: the asyncio tasks a quiet subscribed connection keeps alive. Each task is a
coroutine frame chain plus its bookkeeping (~2 KiB measured with tracemalloc); a connection
needs one (uvicorn's ASGI task), and a delivery group of identical subscriptions one operation
task in all: its other idle members are parked, records of the group without a task or
generators (live/direct.py), and their events still arrive. Keep-alive pings used to be a
sleeping task per connection; they are a timer now, and still arrive.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.api_helpers import create_job_id, mutate, register_id, report
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import LEGACY_WS, TRANSPORT_WS, eventually
from tests.test_subscriptions import JOB_UPDATES, START, Live


@pytest.mark.parametrize("connections", [3, 7])
async def test_idle_subscribed_connections_keep_one_task_each_and_their_group_one(
    live: Live, connections: int
) -> None:
    server = await live.start(ws_keep_alive_interval=0.2)
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    await mutate(http, START, id=job_id)
    tasks_before = await live.loop.peek(lambda: len(asyncio.all_tasks()))
    clients = [await live.ws(server, TRANSPORT_WS) for _ in range(connections)]
    ops = [await client.subscribe(JOB_UPDATES, jobId=job_id) for client in clients]

    async def subscribed() -> bool:
        return await live.loop.peek(lambda: server.feed.subscriber_count) == connections

    await eventually(subscribed, what="every subscriber in the feed")

    async def pinged() -> bool:
        return all(client.pings >= 2 for client in clients)

    await eventually(pinged, what="keep-alive pings on every connection")
    tasks = await live.loop.peek(lambda: len(asyncio.all_tasks())) - tasks_before
    assert tasks == connections + 1
    # And the subscriptions still deliver, and are idle again as before.
    for step in (1, 2):
        await report(http, job_id, step)
        for client, op in zip(clients, ops, strict=True):
            (update,) = await client.take(op, 1)
            assert update["trainingJobUpdates"]["job"]["metrics"] == {"step": step}
    await eventually(subscribed, what="every subscriber still in the feed")

    async def idle_again() -> bool:
        tasks = await live.loop.peek(lambda: len(asyncio.all_tasks())) - tasks_before
        return tasks == connections + 1

    await eventually(idle_again, what="one operation task for the group again")


async def test_legacy_protocol_keep_alives_still_arrive(live: Live) -> None:
    server = await live.start(ws_keep_alive_interval=0.1)
    client = await live.ws(server, LEGACY_WS)

    async def kept_alive() -> bool:
        return client.keep_alives >= 2

    await eventually(kept_alive, what="ka messages")
