"""Fan-out cannot starve requests, and delivery is bounded in time (issue 10, item 4).

With 1,000 subscribers every event woke 1,000 deliveries at once and each step of a mutation
waited behind all of them (47 s round trips); slow subscribers were never detected because
socket buffers absorbed their backlog. Now deliveries take turns through the feed's delivery
gate (a request's next step waits for at most one delivery), a subscription whose event waited
longer than ``MLTRAIN_SUBSCRIBER_MAX_LAG`` is ended with ``SUBSCRIBER_TOO_SLOW`` and the cursor to
resume from, and a send stalled on a full socket holds up no one. These tests count turns of the
event loop and events, not seconds (bench/subscriptions.py --load measures the latencies).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.live.feed import ChangeFeed
from graphql_api.live.selectors import JobSelector
from graphql_api.live.subscriber import FellBehind, Subscriber
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import create_job_id, mutate, register_id, report
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import SubscriptionEnded, eventually
from tests.test_subscriptions import (
    BIG_JOB_UPDATES,
    START,
    Live,
    updates,
)

HISTORY_PAGE = """query($id: ID!, $after: String) {
  trainingJob(jobId: $id) {
    history(first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor } }
  }
}"""


def event(seq: int, job_id: str = "job-1") -> ChangeEvent:
    return ChangeEvent(
        seq=seq,
        entity=EntityKind.TRAINING_JOB,
        entity_id=job_id,
        kind=ChangeKind.METRICS_REPORTED,
        previous_status="RUNNING",
        status="RUNNING",
        occurred_at=datetime.now(UTC),
        model_id="model-1",
        snapshot={},
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_an_event_that_waited_past_the_lag_limit_ends_the_subscription_before_sending() -> (
    None
):
    clock = Clock()
    subscriber = Subscriber(JobSelector(), 10, capacity=1000, max_lag=5.0, clock=clock)
    subscriber.offer(event(11))
    subscriber.offer(event(12))
    first, offered_at = await subscriber.next()
    subscriber.handed_out(first, offered_at)  # on time
    clock.now += 5.5
    late, offered_at = await subscriber.next()
    with pytest.raises(FellBehind) as ended:
        subscriber.handed_out(late, offered_at)
    assert ended.value.resume_seq == 11  # resume before the late event: nothing is lost
    assert ended.value.waited == pytest.approx(5.5)
    with pytest.raises(FellBehind):
        await subscriber.next()


@pytest.mark.parametrize("waiting", [1, 50])
async def test_a_backlog_older_than_the_lag_limit_is_dropped_when_the_next_event_comes(
    waiting: int,
) -> None:
    # A consumer that does not ask at all (its sends are stuck) is found by the next offer.
    clock = Clock()
    subscriber = Subscriber(JobSelector(), 0, capacity=1000, max_lag=5.0, clock=clock)
    for seq in range(1, waiting + 1):
        subscriber.offer(event(seq))
    clock.now += 6
    subscriber.offer(event(waiting + 1))
    assert subscriber.buffered == 0  # the memory is freed at once
    with pytest.raises(FellBehind) as ended:
        await subscriber.next()
    assert ended.value.resume_seq == 0


@pytest.fixture(params=[1, 8], ids=lambda slots: f"{slots}-slots")
async def feed(request: pytest.FixtureRequest) -> AsyncIterator[ChangeFeed]:
    storage = MongoStorage.connect(None, f"pacing_{uuid.uuid4().hex[:8]}")
    running = ChangeFeed(storage.events, poll_interval=60, delivery_slots=request.param)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
        await storage.close()


async def consume(feed: ChangeFeed, log: list[str], count: int, stall: bool = False) -> None:
    """A subscription's consumer: its delivery (execution and send) runs in the step that
    receives the event; ``stall``: its first send then waits forever (a full socket)."""
    async for _ in feed.stream(JobSelector()):
        log.append("delivery")
        if stall:
            await asyncio.Event().wait()
        count -= 1
        if count == 0:
            return


@pytest.mark.parametrize("subscribers", [20, 200])
async def test_a_request_step_waits_for_at_most_the_gates_slots_of_deliveries(
    feed: ChangeFeed, subscribers: int
) -> None:
    log: list[str] = []
    events = 5
    consumers = [asyncio.create_task(consume(feed, log, events)) for _ in range(subscribers)]
    await eventually(lambda: _async(feed.subscriber_count == subscribers))
    for seq in range(1, events + 1):
        feed.notify(event(seq))

    async def request() -> None:
        # A mutation's handling: a series of steps, each waiting for its turn of the loop.
        while len([e for e in log if e == "delivery"]) < subscribers * events:
            log.append("request step")
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(request(), *consumers), 60)
    between: list[int] = []
    run = 0
    for entry in log[log.index("request step") :]:
        if entry == "request step":
            between.append(run)
            run = 0
        else:
            run += 1
    assert max(between) <= feed.gate.slots < subscribers
    assert log.count("delivery") == subscribers * events


async def test_a_stalled_send_holds_up_no_other_subscriber(feed: ChangeFeed) -> None:
    log: list[str] = []
    stalled = asyncio.create_task(consume(feed, [], 1, stall=True))
    healthy = [asyncio.create_task(consume(feed, log, 3)) for _ in range(10)]
    await eventually(lambda: _async(feed.subscriber_count == 11))
    for seq in range(1, 4):
        feed.notify(event(seq))
    await asyncio.wait_for(asyncio.gather(*healthy), 30)
    assert log.count("delivery") == 30
    stalled.cancel()


async def _async(value: bool) -> bool:
    return value


async def test_a_client_that_stops_reading_is_ended_by_the_lag_limit_and_loses_nothing(
    live: Live,
) -> None:
    # A buffer far larger than the events sent: only the time limit can end it.
    server = await live.start(subscriber_buffer=100_000, subscriber_max_lag=0.2, send_buffer=16384)
    http = live.http(server)
    blob = {f"p{i}": "x" * 4000 for i in range(8)}
    job_id = await create_job_id(http, await register_id(http), hyperparameters=blob)
    await mutate(http, START, id=job_id)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    slow = await live.ws(
        server, read=False, sock=sock, max_queue=1, max_size=None, compression=None
    )
    slow_op = await slow.subscribe(BIG_JOB_UPDATES)
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 1))

    # Changes keep coming until the server has shed the stalled subscription (the socket
    # buffers fill after a few ~32 KB events; then events wait, and time runs out).
    step = 0
    while not await live.loop.peek(lambda: server.feed.fallen_behind):
        await report(http, job_id, step)
        step += 1
        assert step < 2_000

    slow.start_reading()
    received: list[dict[str, Any]] = []
    with pytest.raises(SubscriptionEnded) as ended:
        while True:
            received.append((await slow.next(slow_op, within=10))["trainingJobUpdates"])
    (error,) = ended.value.errors
    assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
    assert "waited" in error["message"]
    resume = error["extensions"]["resumeAfter"]
    assert resume == (received[-1]["cursor"] if received else resume)

    healthy = await live.ws(server)
    rest_op = await healthy.subscribe(BIG_JOB_UPDATES, after=resume)
    rest = updates(await healthy.take(rest_op, step - len(received), within=20))
    cursors = [u["cursor"] for u in received + rest]
    assert len(set(cursors)) == step  # every change exactly once across the two streams
    logged: list[str] = []
    after = None
    while True:  # the job's whole history, page by page: the same changes, in the same order
        page = (await http.data(HISTORY_PAGE, id=job_id, after=after))["trainingJob"]["history"]
        logged += [edge["cursor"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert cursors == logged[2:]
