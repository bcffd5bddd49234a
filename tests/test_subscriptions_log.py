"""The change log under concurrent and failing writers, as the live feed reads it.

Appends take a sequence number and then insert, so concurrent writers commit out of order and
a writer that dies in between leaves a hole. These tests pause a writer between its two writes
(or kill it there) and check that the reader neither skips nor repeats an event.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from graphql_api.domain.events import (
    ChangeEvent,
    ChangeKind,
    EntityKind,
    SealedSeq,
    StoredEvent,
)
from graphql_api.domain.values import utc_now
from graphql_api.live.feed import ChangeFeed
from graphql_api.live.selectors import JobSelector
from graphql_api.live.subscriber import FellBehind
from graphql_api.live.tailer import LogTailer
from graphql_api.services import changes
from graphql_api.services.changes import ChangeRecorder
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import eventually


def event(
    entity_id: str = "job-1", *, ago: timedelta = timedelta(0), event_id: str | None = None
) -> ChangeEvent:
    """A job's CREATED event, ``ago`` in the past, with ``event_id`` or a fresh one."""
    return ChangeEvent(
        seq=0,
        entity=EntityKind.TRAINING_JOB,
        entity_id=entity_id,
        kind=ChangeKind.CREATED,
        previous_status=None,
        status="PENDING",
        occurred_at=utc_now() - ago,
        model_id="model-1",
        snapshot={},
        event_id=event_id or uuid.uuid4().hex,
    )


class PausedInsert:
    """Wraps the events collection: the first event insert waits until released, as a writer
    preempted (or dying) between taking its number and writing does."""

    def __init__(self, collection: Any) -> None:
        self._inner = collection
        self.paused = asyncio.Event()
        self.release = asyncio.Event()
        self._armed = True

    async def insert_one(self, doc: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if self._armed and "entity_id" in doc:
            self._armed = False
            self.paused.set()
            await self.release.wait()
        return await self._inner.insert_one(doc, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _now(value: bool) -> bool:
    return value


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tailer(storage: MongoStorage, clock: Clock, position: int = 0) -> LogTailer:
    return LogTailer(storage.events, position, gap_grace=2.0, batch=100, clock=clock)


async def test_an_event_committed_out_of_order_waits_for_the_one_before_it(
    storage: MongoStorage,
) -> None:
    gate = PausedInsert(storage.events._c)
    storage.events._c = gate
    reader = tailer(storage, Clock())
    slow = asyncio.create_task(storage.events.append(event("job-a")))
    await gate.paused.wait()  # job-a holds seq 1, not yet written
    fast = await storage.events.append(event("job-b"))
    assert fast.seq == 2

    events, _ = await reader.poll()
    assert events == []  # seq 2 is there, but seq 1 may still come: not skipped over

    gate.release.set()
    assert (await slow).seq == 1
    events, _ = await reader.poll()
    assert [(e.seq, e.entity_id) for e in events] == [(1, "job-a"), (2, "job-b")]


async def test_a_dead_writers_hole_is_sealed_after_the_grace_and_a_late_writer_is_not_lost(
    storage: MongoStorage,
) -> None:
    gate = PausedInsert(storage.events._c)
    storage.events._c = gate
    clock = Clock()
    reader = tailer(storage, clock)
    late = asyncio.create_task(storage.events.append(event("job-late")))
    await gate.paused.wait()
    await storage.events.append(event("job-b"))

    assert (await reader.poll())[0] == []
    clock.now += 1.0
    assert (await reader.poll())[0] == []  # still within the grace period
    clock.now += 1.5
    events, _ = await reader.poll()
    assert [e.entity_id for e in events] == ["job-b"]  # the hole at seq 1 was sealed
    assert await storage.events.entries_after(0, 1) == [SealedSeq(1)]

    # The writer was only slow: its insert now loses to the seal, and it takes a new number.
    gate.release.set()
    stored = await late
    assert stored.seq == 3
    events, _ = await reader.poll()
    assert [(e.seq, e.entity_id) for e in events] == [(3, "job-late")]
    assert [e.entity_id for e in await storage.events.since(0, 10)] == ["job-b", "job-late"]


async def test_many_concurrent_writers_each_event_read_exactly_once_in_order(
    storage: MongoStorage,
) -> None:
    reader = tailer(storage, Clock())
    seen: list[StoredEvent] = []
    writing = asyncio.gather(*(storage.events.append(event(f"job-{i}")) for i in range(40)))
    while not writing.done():
        seen += (await reader.poll())[0]
        await asyncio.sleep(0)
    stored = await writing
    seen += (await reader.poll())[0]
    assert sorted(e.seq for e in stored) == list(range(1, 41))  # unique numbers, no holes
    assert [e.seq for e in seen] == list(range(1, 41))


async def test_a_retried_append_of_the_same_event_is_stored_once(storage: MongoStorage) -> None:
    original = event()
    first = await storage.events.append(original)
    again = await storage.events.append(original)
    assert again.seq == first.seq
    assert len(await storage.events.for_entity("job-1", 10)) == 1


async def test_appends_continue_after_the_counter_falls_behind_the_log(
    storage: MongoStorage,
) -> None:
    # What a lost `$inc` on a server without atomic updates (FerretDB v1) leaves behind.
    for i in range(3):
        await storage.events.append(event(f"job-{i}"))
    await storage.database["counters"].update_one({"_id": "events"}, {"$set": {"seq": 0}})
    stored = await storage.events.append(event("job-next"))
    assert stored.seq == 4
    assert [e.seq for e in await storage.events.since(0, 10)] == [1, 2, 3, 4]


async def test_the_recorder_retries_a_failing_append_without_duplicating_it(
    storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "FIRST_RETRY_DELAY", 0.001)
    attempts: list[str | None] = []
    real_append = storage.events.append

    async def flaky_append(change: ChangeEvent) -> ChangeEvent:
        attempts.append(change.event_id)
        stored = await real_append(change)
        if len(attempts) < 3:
            raise ConnectionError("reply lost")  # the write landed, its reply did not
        return stored

    monkeypatch.setattr(storage.events, "append", flaky_append)
    from graphql_api.domain.models import TrainingJob

    job = TrainingJob(job_id="job-1", model_id="model-1", dataset_id="d")
    recorded = await ChangeRecorder(storage.events).job(job, ChangeKind.CREATED, None, None)
    assert len(attempts) == 3 and len(set(attempts)) == 1  # one event id across the retries
    assert [e.seq for e in await storage.events.for_entity("job-1", 10)] == [recorded.seq]


async def test_a_starting_feed_waits_for_a_recent_hole_and_seals_an_old_one(
    storage: MongoStorage,
) -> None:
    for name, ago in [("a", 60), (None, 0), ("c", 60), (None, 0), ("e", 0)]:
        if name is None:  # a number taken and never written
            await storage.database["counters"].update_one({"_id": "events"}, {"$inc": {"seq": 1}})
        else:
            await storage.events.append(event(name, ago=timedelta(seconds=ago)))
    # seq 2 is missing before an old event (its writer is long dead), seq 4 before a new one.
    reader = await LogTailer.resume(storage.events, gap_grace=2.0, batch=100, clock=Clock())
    assert reader.position == 3
    assert SealedSeq(2) in await storage.events.entries_after(0, 10)


async def test_a_subscriber_that_falls_behind_is_ended_with_where_to_resume(
    storage: MongoStorage,
) -> None:
    feed = ChangeFeed(storage.events, poll_interval=0.01, buffer=3)
    await feed.start()
    try:
        stream = feed.stream(JobSelector())
        first = asyncio.ensure_future(anext(stream))
        # The stream joins the feed on its first step.
        await eventually(lambda: _now(feed.subscriber_count == 1))
        delivered = await storage.events.append(event("job-0"))
        feed.notify(delivered)
        assert (await first).seq == delivered.seq
        # Its consumer stops pulling: more events arrive than the buffer holds.
        for i in range(1, 6):
            last = await storage.events.append(event(f"job-{i}"))
            feed.notify(last)
        await eventually(lambda: _now(feed.position == last.seq), what="the fan-out")
        with pytest.raises(FellBehind) as ended:
            await anext(stream)
        assert ended.value.resume_seq == delivered.seq  # nothing after it was handed out
        assert feed.subscriber_count == 0
    finally:
        await feed.stop()
