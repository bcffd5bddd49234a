"""``LeanWebSocketsProtocol``'s queue and event (graphql_api/ws_protocol.py): uvicorn calls on
them what it calls on ``asyncio.Queue`` and ``asyncio.Event``, so they must behave the same for
those calls, and an idle connection must hold nothing in them (issue 12 item 6: the four empty
deques they replace were ~3 KiB per idle subscriber)."""

from __future__ import annotations

import asyncio

from graphql_api.ws_protocol import LeanEvent, LeanQueue, LeanWebSocketsProtocol
from tests.api_helpers import create_job_id, register_id
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.test_live_fanout import subscribed, wait_subscribed
from tests.test_subscriptions import JOB_UPDATES, Live


async def test_the_queue_hands_items_out_in_order_to_waiting_getters() -> None:
    queue: LeanQueue[int] = LeanQueue()
    assert queue.empty()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)
    queue.put_nowait(2)
    queue.put_nowait(3)
    assert await first == 1
    assert await second == 2
    assert queue.qsize() == 1
    assert await queue.get() == 3
    assert queue.empty()


async def test_a_cancelled_getter_passes_its_wake_up_on() -> None:
    queue: LeanQueue[str] = LeanQueue()
    cancelled = asyncio.ensure_future(queue.get())
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("message")  # wakes ``cancelled``, which is cancelled before it runs
    cancelled.cancel()
    assert await waiting == "message"
    assert cancelled.cancelled()


async def test_the_event_wakes_every_waiter_and_can_be_cleared() -> None:
    event = LeanEvent(is_set=True)
    assert await event.wait()
    event.clear()
    assert not event.is_set()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    cancelled = asyncio.ensure_future(event.wait())
    event.clear()
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    event.set()  # a cancelled waiter is not woken (and nothing fails)
    assert cancelled.cancelled()


async def test_an_idle_subscribed_connection_holds_nothing_in_its_queue_or_event(
    live: Live,
) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    await subscribed(live, server, 3, JOB_UPDATES, jobId=job_id)
    await wait_subscribed(live, server, 3)

    def held() -> list[tuple[object, ...]]:
        return [
            (protocol.queue._items, protocol.queue._getters is None, protocol.writable._waiters)  # type: ignore[attr-defined]  # the lean ones' internals
            for protocol in server.uvicorn.server_state.connections
            if isinstance(protocol, LeanWebSocketsProtocol)
        ]

    kept = await live.loop.peek(held)
    # Each connection's task waits in ``receive`` (one getter), with no item and no waiter on
    # the writable event.
    assert kept == [(None, False, None)] * 3
