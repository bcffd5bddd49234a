"""The change log does not grow forever (issue 12, item 5): retention deletes old events in
bounded steps inside the server, and a cursor older than what is kept gets ``CURSOR_EXPIRED``,
saying what to do, from a subscription and from ``history(after:)``: never a silent gap.
Deleted numbers are not holes: the live feed neither waits on them nor seals them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind, SealedSeq
from graphql_api.live.cursor import decode
from graphql_api.live.retention import LogRetention
from graphql_api.live.tailer import LogTailer
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import create_job_id, mutate, register_id
from tests.live_fixtures import live_fixture
from tests.live_servers import Server, SubscriptionEnded, eventually
from tests.test_subscriptions import (
    JOB_UPDATES,
    START,
    Live,
    history_of,
    updates,
)

__all__ = ["live_fixture"]

HISTORY_AFTER = """query($id: ID!, $after: String) {
  trainingJob(jobId: $id) { history(first: 100, after: $after) { edges { node { cursor kind } } } }
}"""
HISTORY = """query($id: ID!) {
  trainingJob(jobId: $id) { history(first: 100) { edges { node { cursor kind status } } } }
}"""


def filler(n: int, occurred_at: datetime | None = None) -> ChangeEvent:
    """An event of some other job: what other clients' changes put in the log meanwhile."""
    return ChangeEvent(
        seq=0,
        entity=EntityKind.TRAINING_JOB,
        entity_id=f"other-{n % 7}",
        kind=ChangeKind.METRICS_REPORTED,
        previous_status="RUNNING",
        status="RUNNING",
        occurred_at=occurred_at or datetime.now(UTC),
        model_id="other-model",
        snapshot={"metrics": {"step": n}},
        event_id=uuid.uuid4().hex,
    )


async def append_fillers(live: Live, count: int, occurred_at: datetime | None = None) -> None:
    storage = live.storage
    assert storage is not None
    numbers = iter(range(count))

    async def writer() -> None:
        for n in numbers:
            await storage.events.append(filler(n, occurred_at))

    async def all_writers() -> None:
        await asyncio.gather(*(writer() for _ in range(8)))

    await live.loop.call(all_writers())


async def run_retention(live: Live, server: Server) -> int:
    retention: LogRetention = server.app.state.retention
    return await live.loop.call(retention.run_once())


async def sealed_count(live: Live, at_most: int | None = None) -> int:
    """Sealed numbers in the log (up to ``at_most``: a range retention deleted)."""
    storage = live.storage
    assert storage is not None
    query: dict[str, Any] = {"sealed": True}
    if at_most is not None:
        query["_id"] = {"$lte": at_most}

    async def count() -> int:
        return int(await storage.database["events"].count_documents(query))

    return await live.loop.call(count())


async def history_error(live: Live, server: Server, job_id: str, after: str) -> dict[str, Any]:
    http = live.http(server)
    response = await http.client.post(
        http.url, json={"query": HISTORY_AFTER, "variables": {"id": job_id, "after": after}}
    )
    body: dict[str, Any] = response.json()
    (error,) = body["errors"]
    return dict(error)


# The least retention a server accepts, and a larger one (the setting, not a constant).
@pytest.mark.parametrize("beyond", [1000, 1200])
async def test_a_cursor_older_than_the_kept_count_expires_everywhere_and_live_goes_on(
    live: Live, beyond: int
) -> None:
    server = await live.start(event_retention_count=beyond)
    http = live.http(server)
    model_id = await register_id(http)
    job_id = await create_job_id(http, model_id)
    await mutate(http, START, id=job_id)
    created, started = history_of(await http.data(HISTORY, id=job_id))
    client = await live.ws(server)
    # A subscriber that is live through the deletion loses nothing.
    watching = await client.subscribe(JOB_UPDATES, jobId=job_id)
    await subscribed(live, server, 1)
    await append_fillers(live, beyond + 300)

    floor = await run_retention(live, server)
    assert floor >= decode(started["cursor"])
    assert await sealed_count(live) == 0

    # A subscription resuming from before the floor: a typed error saying what to do.
    old = await client.subscribe(JOB_UPDATES, jobId=job_id, after=created["cursor"])
    with pytest.raises(SubscriptionEnded) as ended:
        await client.next(old)
    (error,) = ended.value.errors
    assert error["extensions"]["code"] == "CURSOR_EXPIRED"
    assert "read the current state again" in error["message"]
    # The same for a history page after such a cursor.
    error = await history_error(live, server, job_id, created["cursor"])
    assert error["extensions"] == {"code": "CURSOR_EXPIRED", "field": "after", "rule": "retention"}
    assert "subscribe from now" in error["message"]

    # What the error says to do works: read the state, subscribe from now; the live
    # subscriber gets the next change too.
    job = (await http.data("query($id: ID!) { trainingJob(jobId: $id) { status } }", id=job_id))[
        "trainingJob"
    ]
    assert job == {"status": "RUNNING"}
    fresh = await client.subscribe(JOB_UPDATES, jobId=job_id)
    await subscribed(live, server, 2)  # and watching
    assert await client.nothing_more(fresh, 0.3)
    await mutate(http, COMPLETE_JOB, id=job_id)
    for op in (fresh, watching):
        (completed,) = updates(await client.take(op, 1))
        assert completed["kind"] == "COMPLETED"
        # A cursor at or above the floor still resumes.
        resumed = await client.subscribe(JOB_UPDATES, jobId=job_id, after=completed["cursor"])
        assert await client.nothing_more(resumed, 0.2)
    assert await sealed_count(live) == 0


async def subscribed(live: Live, server: Server, count: int) -> None:
    """Wait until the server holds ``count`` subscriptions: one without ``after`` starts at
    the present once the server has it (the client is not told), so a change made before
    then is not sent to it."""
    await eventually(
        lambda: live.loop.peek(lambda: server.feed.subscriber_count == count),
        what=f"{count} subscriptions",
    )


COMPLETE_JOB = """mutation($id: ID!) {
  completeTrainingJob(jobId: $id) { ... on TrainingJob { status } ... on Error { code } } }"""


async def test_retention_by_age_keeps_every_event_from_the_first_young_one_on(live: Live) -> None:
    server = await live.start(event_retention_seconds=3600)
    http = live.http(server)
    long_ago = datetime.now(UTC) - timedelta(days=2)
    await append_fillers(live, 150, long_ago)
    model_id = await register_id(http)
    job_id = await create_job_id(http, model_id)
    (created,) = history_of(await http.data(HISTORY, id=job_id))
    await append_fillers(live, 1200, long_ago)

    floor = await run_retention(live, server)
    # Everything before the first young event is gone; it and all after it are kept, even
    # the old ones after it (a log is cut at one point, never riddled with holes).
    assert floor == decode(created["cursor"]) - 2  # the registration's event is young too
    assert history_of(await http.data(HISTORY, id=job_id)) == [{**created, "status": "PENDING"}]
    # Runs again: nothing more is due.
    assert await run_retention(live, server) == floor


async def test_instances_trimming_at_once_agree_and_delete_each_event_once(live: Live) -> None:
    first = await live.start(event_retention_count=1000)
    second = await live.start(event_retention_count=1000)
    await append_fillers(live, 2500)

    async def both() -> list[int]:
        runs = [s.app.state.retention.run_once() for s in (first, second) for _ in range(3)]
        return list(await asyncio.gather(*runs))

    floors = await live.loop.call(both())
    storage = live.storage
    assert storage is not None

    async def state() -> tuple[int, int, int]:
        events = storage.database["events"]
        return (
            await storage.events.floor(),
            int(await events.count_documents({})),
            int(await events.count_documents({"_id": {"$lte": 1500}})),
        )

    floor, kept, below = await live.loop.call(state())
    assert floor == max(floors) == 1500
    assert (kept, below) == (1000, 0)


@pytest.mark.parametrize("grace", [0.0])
async def test_a_server_that_lagged_past_the_floor_ends_its_subscribers_instead_of_sealing(
    storage: MongoStorage, grace: float
) -> None:
    for n in range(1300):
        await storage.events.append(filler(n))
    now = [0.0]
    tailer = LogTailer(storage.events, 5, gap_grace=grace, batch=500, clock=lambda: now[0])
    assert await storage.events.trim(None, 1000, 100, 1000) == 300
    events, _ = await tailer.poll()  # sees a gap at 6..300
    now[0] += 1
    events += (await tailer.poll())[0]
    assert tailer.expired_to == 300 and tailer.position >= 300
    assert [e.seq for e in events][:1] == [301]
    entries = await storage.events.entries_after(0, 2000)
    assert not any(isinstance(e, SealedSeq) for e in entries)


async def test_retention_settings_refuse_a_count_too_small_to_resume_from() -> None:
    with pytest.raises(ValueError, match="at least 1000"):
        Settings(event_retention_count=10)
    assert Settings().event_retention_seconds == 30 * 24 * 3600
    assert Settings().event_retention_count == 0


async def test_subscribers_of_an_instance_that_fell_behind_past_the_floor_get_cursor_expired(
    live: Live,
) -> None:
    server = await live.start(feed_gap_grace=0.05)
    http = live.http(server)
    client = await live.ws(server)
    model_id = await register_id(http)
    job_id = await create_job_id(http, model_id)
    op = await client.subscribe(JOB_UPDATES, jobId=job_id)
    await subscribed(live, server, 1)
    await append_fillers(live, 1300)
    storage = live.storage
    assert storage is not None

    async def fall_behind_while_another_instance_trims() -> int:
        # As if this instance had been cut off from the database (its feed still at the start
        # of the log) while another instance's retention deleted the oldest events. The
        # position goes back after the trim: set before it, the feed could read the events
        # from the start again while the trim's round trips ran (a slow machine) and be past
        # the floor by the time it moved, with nothing missed to report.
        tailer = server.feed._tailer
        assert tailer is not None
        floor = await storage.events.trim(None, 1000, 1000, 1000)
        tailer.position = 0
        return floor

    floor = await live.loop.call(fall_behind_while_another_instance_trims())
    assert floor > 0
    with pytest.raises(SubscriptionEnded) as ended:
        await client.next(op)
    (error,) = ended.value.errors
    assert error["extensions"]["code"] == "CURSOR_EXPIRED"
    assert "subscribe from now" in error["message"]
    # No deleted number was taken for a hole and sealed. (A filler append still in flight under
    # the test's 0.05 s gap grace may be sealed above the floor, on a loaded machine: that is
    # the feed's ordinary rule, not retention's.)
    assert await sealed_count(live, at_most=floor) == 0
    # A new subscription from now works: the feed moved on past the floor.
    fresh = await client.subscribe(JOB_UPDATES, jobId=job_id)
    await subscribed(live, server, 1)
    await client.nothing_more(fresh, 0.2)
    await mutate(http, START, id=job_id)
    assert updates(await client.take(fresh, 1))[0]["kind"] == "STARTED"
