"""A shared subscription result is encoded once, and each subscriber's frame carries its own id
(issue 12 item 6, "encode once").

graphql-transport-ws ``next`` frames of subscribers that share an execution differ only in the
subscription's ``id``: the result's JSON is encoded once per distinct result and each frame is
built around it. What a client sees must not change: a valid JSON frame with its own ``id``
(whatever characters it has), the same payload as the other subscribers of that operation, and
its own result where its variables differ. Counted with the feed's ``encodings``, read from
raw frames over real WebSockets.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.api_helpers import create_job_id, mutate, register_id, report
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import TRANSPORT_WS, Server, eventually
from tests.test_subscriptions import JOB_UPDATES, START, Live

#: Ids a client may choose: the graphql-ws library's UUIDs, numbers, and text that JSON escapes.
IDS = ["1", "0b7e3d1c-4a43-4f0e-9d43-2f7f0c2b9a11", 'quote " and \\ backslash', "é\u2028ü"]


async def raw_client(server: Server) -> ClientConnection:
    ws = await connect(server.ws_url, subprotocols=[Subprotocol(TRANSPORT_WS)], open_timeout=5)
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
    return ws


async def subscribe(ws: ClientConnection, op_id: str, **variables: Any) -> None:
    payload = {"query": JOB_UPDATES, "variables": variables}
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))


async def next_frames(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next ``count`` ``next`` messages on this connection, as parsed from the raw text."""
    frames: list[dict[str, Any]] = []
    while len(frames) < count:
        raw = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(raw, str)  # a text frame, as graphql-transport-ws requires
        message = json.loads(raw)
        if message["type"] == "ping":
            await ws.send('{"type": "pong"}')
            continue
        assert message["type"] == "next", message
        frames.append(message)
    return frames


async def counters(live: Live, server: Server) -> tuple[int, int]:
    return await live.loop.peek(
        # A frame written directly to a subscriber's socket (live/direct.py) reuses the
        # encoding too, without asking for it.
        lambda: (
            server.feed.encodings.encodings,
            server.feed.encodings.reused + server.feed.groups.stats.written,
        )
    )


async def wait_subscribed(live: Live, server: Server, count: int) -> None:
    async def ready() -> bool:
        return await live.loop.peek(lambda: server.feed.subscriber_count) >= count

    await eventually(ready, what=f"{count} subscribers in the feed")


async def test_subscribers_with_different_ids_get_the_same_payload_encoded_once(
    live: Live,
) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    sockets = [await raw_client(server) for _ in IDS]
    try:
        for ws, op_id in zip(sockets, IDS, strict=True):
            await subscribe(ws, op_id, jobId=job_id)
        await wait_subscribed(live, server, len(IDS))
        encoded_before, reused_before = await counters(live, server)

        await mutate(http, START, id=job_id)
        for step in range(2):
            await report(http, job_id, step)

        received = [await next_frames(ws, 3) for ws in sockets]
        for frames, op_id in zip(received, IDS, strict=True):
            assert [frame["id"] for frame in frames] == [op_id] * 3
            assert set(frames[0]) == {"id", "type", "payload"}
        payloads = [[frame["payload"] for frame in frames] for frames in received]
        assert all(p == payloads[0] for p in payloads)
        updates = [p["data"]["trainingJobUpdates"] for p in payloads[0]]
        assert [u["kind"] for u in updates] == ["STARTED", "METRICS_REPORTED", "METRICS_REPORTED"]
        assert [u["job"]["metrics"].get("step") for u in updates] == [None, 0, 1]
        # Three events, one encoding each; the other subscribers reused it.
        encoded, reused = await counters(live, server)
        assert encoded - encoded_before == 3
        assert reused - reused_before == 3 * (len(IDS) - 1)
    finally:
        for ws in sockets:
            await ws.close()


async def test_other_variables_on_the_same_connection_get_their_own_result(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    model_id = await register_id(http)
    watched = await create_job_id(http, model_id)
    other = await create_job_id(http, model_id)
    first, second = await raw_client(server), await raw_client(server)
    try:
        # The same document: all jobs ("all", both sockets), and one job ("mine", first socket).
        await subscribe(first, "all")
        await subscribe(second, "all")
        await subscribe(first, "mine", jobId=watched)
        await wait_subscribed(live, server, 3)
        encoded_before, _ = await counters(live, server)

        await mutate(http, START, id=other)
        await mutate(http, START, id=watched)

        on_first = await next_frames(first, 3)
        on_second = await next_frames(second, 2)
        mine = [f["payload"]["data"]["trainingJobUpdates"] for f in on_first if f["id"] == "mine"]
        everything = [f["payload"] for f in on_first if f["id"] == "all"]
        assert [u["job"]["jobId"] for u in mine] == [watched]
        assert [f["id"] for f in on_second] == ["all", "all"]
        assert everything == [f["payload"] for f in on_second]
        jobs = [p["data"]["trainingJobUpdates"]["job"]["jobId"] for p in everything]
        assert jobs == [other, watched]
        # The same event under other variables is its own execution, and its own encoding.
        assert mine[0] == everything[1]["data"]["trainingJobUpdates"]
        encoded, _ = await counters(live, server)
        assert encoded - encoded_before == 3
    finally:
        await first.close()
        await second.close()
