"""Subscribers whose frames differ only in their id: one delivery chain per event, the other
frames written straight to their sockets (issue 12 item 6; graphql_api/live/direct.py).

Counted over real WebSockets (uvicorn's sans-I/O protocol, as ``mltrain serve`` runs): how many
subscribers had an event handed out through their own chain (the feed's stream, the resolver,
graphql-core, Strawberry, the ASGI send; ``Subscriber.handed_out`` is where each starts), and
how many frames were written directly. What a client sees must not change: every event, in
order, its own id on every frame, nothing after it completed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.protocol import State
from websockets.server import ServerProtocol

from graphql_api.auth.ws import ExplainingWebSocketAdapter
from graphql_api.live.direct import FrameWriter, OutgoingFrame, text_frame_header
from graphql_api.live.subscriber import Subscriber
from tests.api_helpers import create_job_id, mutate, register_id, report
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import Server, eventually
from tests.test_live_fanout import subscribed, wait_subscribed, watched_job
from tests.test_subscriptions import JOB_UPDATES, START, Live


def count_hand_outs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seq of every event handed out through a subscriber's own delivery chain."""
    handed: list[int] = []
    original = Subscriber.handed_out

    def counted(self: Subscriber, event: Any, offered_at: float) -> None:
        handed.append(event.seq)
        original(self, event, offered_at)

    monkeypatch.setattr(Subscriber, "handed_out", counted)
    return handed


async def written(live: Live, server: Server) -> int:
    return await live.loop.peek(lambda: server.feed.groups.stats.written)


@pytest.mark.parametrize("count", [3, 8])
async def test_one_delivery_chain_per_event_and_operation_the_rest_written_directly(
    live: Live, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    handed = count_hand_outs(monkeypatch)
    server, http, job_id, full, slim = await watched_job(live, count)
    written_before = await written(live, server)

    # One change at a time, each received by all before the next: every subscriber is idle
    # when an event comes (the case direct delivery is for).
    await mutate(http, START, id=job_id)
    for client, op in full + slim:
        await client.take(op, 1)
    for step in range(3):
        await report(http, job_id, step)
        for client, op in full + slim:
            got = await client.next(op)
            assert got["trainingJobUpdates"]["status"] == "RUNNING"
            if (client, op) in full:
                assert got["trainingJobUpdates"]["job"]["metrics"] == {"step": step}

    # Four events, two operations: eight chains, not 2 x 4 x count.
    assert len(handed) == 8
    assert await written(live, server) - written_before == 8 * (count - 1)


async def test_a_burst_arrives_whole_and_in_order_on_every_socket_writable_or_not(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Changes back to back (subscribers busy when the next event comes), and one subscriber
    # whose socket refuses direct writes (as a full one does): each falls back to its own
    # chain where it must, and no one misses, repeats or reorders an event.
    original = FrameWriter.write

    def refusing(self: FrameWriter, frame: OutgoingFrame) -> bool:
        return False if '"id":"2"' in frame.text else original(self, frame)

    monkeypatch.setattr(FrameWriter, "write", refusing)
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    clients = [await live.ws(server) for _ in range(5)]
    ops = []
    for client in clients:
        ops.append(await client.subscribe(JOB_UPDATES, jobId=job_id))
        if client is clients[0]:
            ops.append(await client.subscribe(JOB_UPDATES, jobId=job_id))  # id "2"
    await wait_subscribed(live, server, 6)
    assert ops[1] == "2"

    await mutate(http, START, id=job_id)
    for step in range(10):
        await report(http, job_id, step)

    subscriptions = [(clients[0], ops[0]), (clients[0], ops[1])]
    subscriptions += [(client, op) for client, op in zip(clients[1:], ops[2:], strict=True)]
    for client, op in subscriptions:
        got = [u["trainingJobUpdates"] for u in await client.take(op, 11)]
        assert [u["kind"] for u in got] == ["STARTED"] + ["METRICS_REPORTED"] * 10
        assert [u["job"]["metrics"].get("step") for u in got] == [None, *range(10)]
        cursors = [u["cursor"] for u in got]
        assert len(set(cursors)) == 11


async def test_a_completed_subscription_gets_no_frame_written_for_it(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    staying = await subscribed(live, server, 3, JOB_UPDATES, jobId=job_id)
    leaving = await live.ws(server)
    left = await leaving.subscribe(JOB_UPDATES, jobId=job_id)
    other = await leaving.subscribe(JOB_UPDATES, jobId=job_id)  # same socket, stays
    await wait_subscribed(live, server, 5)
    await mutate(http, START, id=job_id)
    await leaving.take(left, 1)
    for client, op in [*staying, (leaving, other)]:
        await client.take(op, 1)

    await leaving.unsubscribe(left)
    await wait_subscribed_exactly(live, server, 4)
    await report(http, job_id, 1)

    for client, op in [*staying, (leaving, other)]:
        got = await client.next(op)
        assert got["trainingJobUpdates"]["job"]["metrics"] == {"step": 1}
    # Anything written for the completed id would come on that socket before the next event.
    await report(http, job_id, 2)
    assert (await leaving.next(other))["trainingJobUpdates"]["job"]["metrics"] == {"step": 2}
    assert await leaving.nothing_more(left, wait=0.01)


async def wait_subscribed_exactly(live: Live, server: Server, count: int) -> None:
    async def ready() -> bool:
        return await live.loop.peek(lambda: server.feed.subscriber_count) == count

    await eventually(ready, what=f"{count} subscribers in the feed")


async def test_a_leader_whose_send_stalls_stalls_none_of_its_followers(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The member woken for an event may have a full socket (a slow client): its followers'
    # frames are written before its own send, not after it.
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    subscribers = await subscribed(live, server, 3, JOB_UPDATES, jobId=job_id)
    await wait_subscribed(live, server, 3)
    released = asyncio.Event()  # set on the servers' loop
    held: list[str] = []
    original = ExplainingWebSocketAdapter.send_text

    async def stalled(self: ExplainingWebSocketAdapter, text: str) -> None:
        held.append(text)
        await released.wait()
        await original(self, text)

    monkeypatch.setattr(ExplainingWebSocketAdapter, "send_text", stalled)
    await mutate(http, START, id=job_id)

    # The leader's send is held until released, so the followers may take as long as the
    # server needs. With 10 s this failed once in a full CI run (no follower had the event),
    # not reproduced in 14 runs alone or under CPU load nor in four full runs since; the cause
    # was not pinned down, the likeliest is the loaded CI machine (in another CI run, one
    # database operation took more than 2.5 s).
    within = 30
    try:
        receiving = [
            asyncio.ensure_future(client.next(op, within=within)) for client, op in subscribers
        ]
        done, pending = await asyncio.wait(
            receiving, timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        while len(done) < 2 and pending:
            more, pending = await asyncio.wait(
                pending, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
            if not more:
                break
            done |= more
        received = [task for task in done if task.exception() is None]
        assert len(received) == 2  # the followers, while the leader's send is held

        async def leader_held() -> bool:  # it sends after its followers' frames are written
            return len(held) == 1

        await eventually(leader_held, what="the leader's send to be held")
        assert all(not task.done() for task in pending)
    finally:
        await live.loop.peek(released.set)  # (also when the assertions fail)
    got = [await task for task in receiving]
    assert all(u["trainingJobUpdates"]["kind"] == "STARTED" for u in got)


HISTORY_FROM_AFTER = """
subscription($jobId: ID, $after: String) {
  trainingJobUpdates(jobId: $jobId, after: $after) {
    cursor kind job { jobId history(first: 10, after: $after) { edges { node { kind } } } }
  }
}"""


async def watched_from_its_start(
    live: Live, server: Server, reports: int
) -> tuple[Any, str, Any, list[str]]:
    """A job started and reported ``reports`` times under a subscriber from its start: the
    HTTP client, the job's id, that subscriber, and the cursors of what it received."""
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    watcher = await live.ws(server)
    watching = await watcher.subscribe(JOB_UPDATES, jobId=job_id)
    await wait_subscribed(live, server, 1)
    await mutate(http, START, id=job_id)
    for step in range(reports):
        await report(http, job_id, step)
    updates = await watcher.take(watching, 1 + reports)
    return http, job_id, watcher, [u["trainingJobUpdates"]["cursor"] for u in updates]


async def test_subscribers_resumed_from_different_cursors_share_one_chain_once_live(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Clients that reconnect each resume from their own cursor: once live, an event's frame
    # is the same for all of them, so they are one group.
    handed = count_hand_outs(monkeypatch)
    server = await live.start()
    http, job_id, watcher, cursors = await watched_from_its_start(live, server, reports=3)
    await watcher.close()
    await wait_subscribed_exactly(live, server, 0)

    resumed = []
    for cursor in cursors:  # each replays what came after its cursor, then joins live
        client = await live.ws(server)
        op = await client.subscribe(JOB_UPDATES, jobId=job_id, after=cursor)
        resumed.append((client, op, cursors.index(cursor)))
    for client, op, index in resumed:
        await client.take(op, 3 - index)
    await wait_subscribed(live, server, 4)
    handed.clear()

    await report(http, job_id, 9)
    for client, op, _ in resumed:
        got = (await client.next(op))["trainingJobUpdates"]
        assert got["job"]["metrics"] == {"step": 9}
    assert len(handed) == 1


async def test_a_cursor_the_selection_also_reads_keeps_subscribers_apart(live: Live) -> None:
    # ``$after`` also pages the job's history here: the frames differ, so each subscriber
    # gets its own.
    server = await live.start()
    http, job_id, _watcher, cursors = await watched_from_its_start(live, server, reports=1)

    subscribers = []
    for cursor in cursors:
        client = await live.ws(server)
        op = await client.subscribe(HISTORY_FROM_AFTER, jobId=job_id, after=cursor)
        subscribers.append((client, op))
    await subscribers[0][0].take(subscribers[0][1], 1)  # the report, replayed after START
    await wait_subscribed(live, server, 3)
    await report(http, job_id, 1)

    histories = []
    for client, op in subscribers:
        got = (await client.next(op))["trainingJobUpdates"]
        histories.append([e["node"]["kind"] for e in got["job"]["history"]["edges"]])
    assert histories == [["METRICS_REPORTED"] * 2, ["METRICS_REPORTED"]]


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 300, 65_535, 65_536, 70_000])
def test_a_direct_frame_is_the_bytes_websockets_would_write(length: int) -> None:
    """Followers' frames are framed without websockets' serializer (a tenth of a delivery's
    CPU): the bytes must be websockets' own, at every length boundary of RFC 6455."""
    connection = ServerProtocol()
    connection.state = State.OPEN
    payload = ("é" * length).encode()[:length]
    connection.send_text(payload)
    assert text_frame_header(len(payload)) + payload == b"".join(connection.data_to_send())


async def test_a_group_with_compressed_and_plain_connections_gets_the_same_frames(
    live: Live,
) -> None:
    """With permessage-deflate accepted (``MLTRAIN_WS_PER_MESSAGE_DEFLATE``), members of one
    group that negotiated it get their frames from websockets (compressed); the others the
    direct frame. Every member receives the same updates, in order."""
    server = await live.start(ws_per_message_deflate=True)
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    members = []
    for compression in ["deflate", None, "deflate", None]:
        client = await live.ws(server, compression=compression)
        members.append((client, await client.subscribe(JOB_UPDATES, jobId=job_id)))
    assert [bool(c.ws.protocol.extensions) for c, _ in members] == [True, False, True, False]
    await wait_subscribed(live, server, 4)
    written_before = await written(live, server)
    await mutate(http, START, id=job_id)
    for client, op in members:
        await client.take(op, 1)
    for step in range(3):
        await report(http, job_id, step)
        received = [await client.next(op) for client, op in members]
        assert all(got == received[0] for got in received), received
        assert received[0]["trainingJobUpdates"]["job"]["metrics"] == {"step": step}
    # Followers of both kinds were written directly: 4 events, 3 followers each.
    assert await written(live, server) - written_before == 12


async def test_frames_kept_while_the_server_is_busy_arrive_whole_and_in_order(
    live: Live,
) -> None:
    """While a fan-out's gap lasts (``WriteBatches``: the server is busy), followers' frames
    are kept and each socket gets them in one write: over real WebSockets every subscriber
    still receives every event once, in order, each frame whole, with the leader's own frames
    (written by the ordinary path) in their place."""
    server, http, job_id, full, slim = await watched_job(live, 4)

    def busy() -> None:  # as if the last fan-out had taken half a second
        batches = server.feed.groups.batches
        batches._not_before = asyncio.get_running_loop().time() + 0.5

    def counts() -> tuple[int, int, int]:
        batches = server.feed.groups.batches
        return batches.frames, batches.writes, batches.flushes

    before = await live.loop.peek(counts)
    await live.loop.peek(busy)
    await mutate(http, START, id=job_id)
    for step in range(6):
        await report(http, job_id, step)
    for client, op in full:
        got = [u["trainingJobUpdates"] for u in await client.take(op, 7)]
        assert [u["kind"] for u in got] == ["STARTED"] + ["METRICS_REPORTED"] * 6
        assert [u["job"]["metrics"].get("step") for u in got] == [None, *range(6)]
    for client, op in slim:
        assert len(await client.take(op, 7)) == 7
    after = await live.loop.peek(counts)
    frames, writes, flushes = (a - b for a, b in zip(after, before, strict=True))
    assert flushes >= 1
    assert frames == 7 * 2 * 3  # two operations of 4 subscribers: 3 followers each
    assert writes < frames  # kept frames shared a socket write
