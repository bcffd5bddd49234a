"""Event appends that wait go together: one counter update and one insert for a batch.

A process has at most ``APPENDS_IN_FLIGHT`` appends under way; the ones that arrive meanwhile
wait and then go in one batch (their numbers taken in a row from the counter, one ordered
insert). These pin what that must keep: each event stored once with a number of its own, the
numbers in the order of the calls, every event read by the feed exactly once and in order, and
the refusals a single append copes with (a number sealed by a reader, an event already stored).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from graphql_api.domain.events import ChangeEvent
from graphql_api.live.tailer import LogTailer
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo.events import APPENDS_IN_FLIGHT
from tests.test_subscriptions_log import event as created_event


def event(entity_id: str, event_id: str | None = None) -> ChangeEvent:
    return created_event(entity_id, ago=timedelta(seconds=1), event_id=event_id)


class HeldInserts:
    """Wraps the events collection: the first ``held`` single inserts wait until released,
    so that the appends after them have to wait for a slot and go in a batch."""

    def __init__(self, collection: Any, held: int) -> None:
        self._inner = collection
        self.held = 0
        self._to_hold = held
        self.all_held = asyncio.Event()
        self.release = asyncio.Event()

    async def insert_one(self, doc: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if self._to_hold:
            self._to_hold -= 1
            self.held += 1
            if not self._to_hold:
                self.all_held.set()
            await self.release.wait()
        return await self._inner.insert_one(doc, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def batch_behind_held_appends(
    storage: MongoStorage, events: list[ChangeEvent]
) -> tuple[list[ChangeEvent], list[ChangeEvent]]:
    """The stored ``events``, appended while APPENDS_IN_FLIGHT appends hold every slot (so
    that they wait and go together), and the held ones."""
    gate = HeldInserts(storage.events._c, APPENDS_IN_FLIGHT)
    storage.events._c = gate
    try:
        held = [
            asyncio.create_task(storage.events.append(event(f"held-{n}")))
            for n in range(APPENDS_IN_FLIGHT)
        ]
        await gate.all_held.wait()
        waiting = [asyncio.create_task(storage.events.append(e)) for e in events]
        for _ in range(3):
            await asyncio.sleep(0)  # every waiting append has queued (none can start)
        storage.stats.round_trips = 0
        gate.release.set()
        return list(await asyncio.gather(*waiting)), list(await asyncio.gather(*held))
    finally:
        storage.events._c = gate._inner


@pytest.mark.parametrize("waiting", [2, 7, 40])
async def test_waiting_appends_take_one_counter_update_and_one_insert_in_the_order_of_the_calls(
    storage: MongoStorage, waiting: int
) -> None:
    reader = LogTailer(storage.events, 0, gap_grace=2.0, batch=1000)
    events = [event(f"job-{n}") for n in range(waiting)]
    stored, held = await batch_behind_held_appends(storage, events)
    # The batch's counter update and insert, not two round trips per waiting event (the held
    # appends' round trips were made before the count starts).
    assert storage.stats.round_trips == 2
    assert [e.event_id for e in stored] == [e.event_id for e in events]
    seqs = [e.seq for e in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == waiting  # in the order of the calls
    every = list(range(1, waiting + APPENDS_IN_FLIGHT + 1))
    assert sorted([*seqs, *(e.seq for e in held)]) == every  # no holes
    read = (await reader.poll())[0]
    assert [e.seq for e in read] == every  # each once, in order
    assert {getattr(e, "event_id", None) for e in read} == {e.event_id for e in [*stored, *held]}


async def test_a_batch_takes_a_new_number_for_an_event_whose_number_a_reader_sealed(
    storage: MongoStorage,
) -> None:
    """A reader seals a number a batch is about to insert (the batch's writer looked dead):
    that event is appended again with a new number, the ones after it keep theirs."""
    events = [event(f"job-{n}") for n in range(4)]
    # The held appends take 1 to h; the batch will take h + 1 to h + 4: seal h + 2 first.
    h = APPENDS_IN_FLIGHT
    await storage.events.seal(h + 2)
    stored, _ = await batch_behind_held_appends(storage, events)
    seqs = [e.seq for e in stored]
    assert seqs == [h + 1, h + 5, h + 3, h + 4]
    reader = LogTailer(storage.events, 0, gap_grace=2.0, batch=1000)
    read = (await reader.poll())[0]
    # h + 2 is the seal: skipped, and no gap to wait for.
    assert [e.seq for e in read] == [*range(1, h + 2), h + 3, h + 4, h + 5]
    assert [getattr(e, "event_id", None) for e in read[h:]] == [
        events[n].event_id for n in (0, 2, 3, 1)
    ]


async def test_a_batch_answers_an_event_already_stored_with_the_stored_one(
    storage: MongoStorage,
) -> None:
    """A retry of an append whose reply was lost, in a batch: stored once, answered with
    its first number; the events after it are stored with their numbers."""
    first = await storage.events.append(event("job-again"))
    events = [event("job-a"), event("job-again", first.event_id), event("job-b")]
    stored, _ = await batch_behind_held_appends(storage, events)
    assert stored[1] == first
    assert len(await storage.events.for_entity("job-again", 10)) == 1
    assert [e.entity_id for e in stored] == ["job-a", "job-again", "job-b"]
    assert stored[0].seq < stored[2].seq


async def test_a_caller_that_stops_waiting_leaves_the_others_batch_alone(
    storage: MongoStorage,
) -> None:
    gate = HeldInserts(storage.events._c, APPENDS_IN_FLIGHT)
    storage.events._c = gate
    held = [
        asyncio.create_task(storage.events.append(event(f"held-{n}")))
        for n in range(APPENDS_IN_FLIGHT)
    ]
    await gate.all_held.wait()
    given_up = asyncio.create_task(storage.events.append(event("job-given-up")))
    kept = asyncio.create_task(storage.events.append(event("job-kept")))
    await asyncio.sleep(0)
    given_up.cancel()
    gate.release.set()
    assert (await kept).entity_id == "job-kept"
    await asyncio.gather(*held)
    with pytest.raises(asyncio.CancelledError):
        await given_up
    storage.events._c = gate._inner
    # Its event may or may not have been stored (as with any cancelled write), never twice.
    assert len(await storage.events.for_entity("job-given-up", 10)) <= 1
