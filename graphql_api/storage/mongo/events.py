"""The change log in MongoDB."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from graphql_api.domain.events import (
    ChangeEvent,
    EntityKind,
    LogEntry,
    SealedSeq,
    StoredEvent,
    UnreadableEvent,
)
from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo import documents
from graphql_api.storage.mongo.client import aggregate
from graphql_api.storage.mongo.collection import (
    MAX_APPEND_ATTEMPTS,
    MongoCollection,
    UpdateGuard,
    is_duplicate_key,
)
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.model_history import MongoModelHistory

#: How far below the counter ``head`` looks first (appends in flight leave holes there).
HEAD_WINDOW = 64

#: The counter document holding the retention floor: every event up to it may be deleted.
FLOOR_ID = "events_floor"

#: Appends one process has under way at once; more wait and go together, in one batch (one
#: counter update and one insert for all of them) as soon as one of these ends. Two, not one:
#: an append that stalls (a slow insert) does not hold up every other one, and with 8 racing
#: claims most appends still go in batches (bench/README.md "Claims").
APPENDS_IN_FLIGHT = 2
#: Events one batch appends at most.
APPEND_BATCH = 64


@bounded_methods
class MongoEventStore(MongoModelHistory, MongoCollection):
    """The change log: ``_id`` is the sequence number, taken from a counter document (``$inc``).

    Taking a number and writing the event are two writes, so concurrent appends can become
    visible out of order, and a writer that dies in between leaves a hole; the live feed's
    reader copes with both (``graphql_api.live.tailer``). The unique ``_id`` is what keeps the
    log sound where ``$inc`` is not atomic across connections (FerretDB v1 can hand one number
    to two writers): the loser of the duplicate key takes another number. A hole sealed by a
    reader is the document ``{_id: seq, sealed: true}``; event queries skip it.

    Appends that arrive while ``APPENDS_IN_FLIGHT`` are under way wait and then go together:
    one ``$inc`` by their count and one ordered ``insert_many`` (``_append_batch``). That is
    the same as appending them one after another: their numbers are taken after each of their
    changes was written (so a record's next event still gets a higher number than its last),
    none is inserted below a number a reader has passed (a sealed number refuses it, and it
    takes a new one), and one process's batches are in the order of its calls.
    """

    def __init__(
        self, collection: Any, counters: Any, stats: StoreStats, guard: UpdateGuard
    ) -> None:
        super().__init__(collection, stats, guard)
        self._counters = counters
        #: Appends under way (each a single append or a batch).
        self._appending = 0
        #: Appends waiting for a free slot, in order: the next batch.
        self._waiting: list[_Waiting] = []
        self._batches: set[asyncio.Task[None]] = set()

    async def append(self, event: ChangeEvent) -> ChangeEvent:
        if self._appending < APPENDS_IN_FLIGHT and not self._waiting:
            self._appending += 1
            try:
                return await self._append_one(event)
            finally:
                self._appending -= 1
                self._start_waiting()
        # APPENDS_IN_FLIGHT appends are under way: this one joins the next batch (one counter
        # update and one insert for all of its events), which starts when one of them ends.
        waiting = _Waiting(event, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        return await waiting.stored

    def _start_waiting(self) -> None:
        """Start the next batch of waiting appends, if any wait and a slot is free. It runs
        in a task of its own (no caller's cancel stops the others' appends), in the context
        of its first caller (its deadline: ``failures.bounded``; its round trips counted or
        not as that caller's)."""
        if not self._waiting or self._appending >= APPENDS_IN_FLIGHT:
            return
        batch, self._waiting = self._waiting[:APPEND_BATCH], self._waiting[APPEND_BATCH:]
        self._appending += 1
        task = asyncio.create_task(self._append_waiting(batch), context=batch[0].context)
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _append_waiting(self, batch: list[_Waiting]) -> None:
        try:
            results = await self._append_batch([w.event for w in batch])
        except Exception as error:  # the batch's counter or insert failed: each caller's error
            results = [error] * len(batch)
        except BaseException:  # cancelled (the loop is closing): so are its callers' waits
            for waiting in batch:
                waiting.stored.cancel()
            raise
        finally:
            self._appending -= 1
            self._start_waiting()
        for waiting, result in zip(batch, results, strict=True):
            if waiting.stored.done():  # its caller gave up waiting (cancelled, timed out)
                continue
            if isinstance(result, Exception):
                waiting.stored.set_exception(result)
            else:
                waiting.stored.set_result(result)

    async def _append_batch(self, events: list[ChangeEvent]) -> list[ChangeEvent | Exception]:
        """Append ``events`` with one counter update (their numbers in a row, taken now, as
        each would have been) and one ordered insert. An event the insert refuses (its number
        taken: a sealed hole, a lost ``$inc``; or the event already stored) goes the way of a
        single append; those after it are inserted again with their numbers."""
        if len(events) == 1:
            return [await self._append_one(events[0])]
        top = await self._next_seq(len(events))
        stored = [
            event.model_copy(update={"seq": top - len(events) + 1 + n})
            for n, event in enumerate(events)
        ]
        results: list[ChangeEvent | Exception] = list(stored)
        todo = list(range(len(events)))
        while todo:
            try:
                self._trip()
                await self._c.insert_many([_event_doc(stored[n]) for n in todo], ordered=True)
                return results
            except BulkWriteError as error:
                write_errors = error.details.get("writeErrors") or []
                if not write_errors or not _duplicate_key(write_errors[0]):
                    raise
                refused = int(write_errors[0]["index"])
            try:
                results[todo[refused]] = await self._append_one(events[todo[refused]])
            except Exception as error:
                results[todo[refused]] = error
            todo = todo[refused + 1 :]
        return results

    async def _append_one(self, event: ChangeEvent) -> ChangeEvent:
        for collisions in range(MAX_APPEND_ATTEMPTS):
            if collisions >= 2:
                # Repeated collisions: the counter lags the log (a lost ``$inc`` on a server
                # without atomic updates). Move it past the highest stored number.
                await self._counter_at_least(await self.head())
            stored = event.model_copy(update={"seq": await self._next_seq()})
            try:
                self._trip()
                await self._c.insert_one(_event_doc(stored))
                return stored
            except (DuplicateKeyError, OperationFailure) as error:
                if not is_duplicate_key(error):
                    raise
            if event.event_id is not None:
                # Either the number was taken, or this very event is already stored (a retry
                # of an append whose reply was lost): then that is the answer.
                self._trip()
                landed = await self._c.find_one({"event_id": event.event_id})
                if landed is not None:
                    found = _stored_event(landed)
                    if isinstance(found, ChangeEvent):
                        return found
        raise RuntimeError(f"no free sequence number after {MAX_APPEND_ATTEMPTS} attempts")

    async def has_event(self, event_id: str) -> bool:
        self._trip()
        return await self._c.find_one({"event_id": event_id}, {"_id": 1}) is not None

    async def _next_seq(self, count: int = 1) -> int:
        """Take ``count`` numbers from the counter; the highest of them."""
        for _ in range(3):
            self._trip()
            try:
                counter = await self._counters.find_one_and_update(
                    {"_id": "events"},
                    {"$inc": {"seq": count}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                return int(counter["seq"])
            except (DuplicateKeyError, OperationFailure) as error:
                # Two first-ever upserts raced; the counter exists now, so the retry updates.
                if not is_duplicate_key(error):
                    raise
        raise RuntimeError("could not take a sequence number from the events counter")

    async def _counter_at_least(self, seq: int) -> None:
        self._trip()
        await self._counters.update_one({"_id": "events"}, {"$max": {"seq": seq}}, upsert=True)

    async def page_for_entities(
        self, entity_ids: Sequence[str], after: int, first: int
    ) -> dict[str, list[StoredEvent]]:
        found: dict[str, list[StoredEvent]] = {entity_id: [] for entity_id in entity_ids}
        if not found:
            return found
        # Each entity needs ``first + 1`` events (one more says a next page exists). One query
        # reads at most that many per entity, oldest first across all of them: enough for
        # every entity whose page is short or whose events are not crowded out by busier ones.
        # If it came back full, it read *every* matching event up to the last one it returned,
        # so each entity still short of its page gets one indexed query from there, all at
        # once. (Per-group limits in one query need $setWindowFields or an ordered $push,
        # which neither the mock nor DocumentDB provide.)
        want = first + 1
        limit = len(found) * want
        self._trip()
        docs = (
            await self._c.find({"entity_id": {"$in": list(found)}, "_id": {"$gt": after}})
            .sort([("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        for doc in docs:
            events = found[doc["entity_id"]]
            if len(events) < want:
                events.append(_stored_event(doc))
        if len(docs) < limit:
            return found
        floor = int(docs[-1]["_id"])

        async def top_up(entity_id: str) -> None:
            events = found[entity_id]
            self._trip()
            more = (
                await self._c.find({"entity_id": entity_id, "_id": {"$gt": floor}})
                .sort([("_id", ASCENDING)])
                .limit(want - len(events))
                .to_list(None)
            )
            events.extend(_stored_event(doc) for doc in more)

        await asyncio.gather(*(top_up(e) for e, events in found.items() if len(events) < want))
        return found

    async def count_for_entities(self, entity_ids: Sequence[str]) -> dict[str, int]:
        counts = dict.fromkeys(entity_ids, 0)
        if not counts:
            return counts
        self._trip()
        pipeline = [
            {"$match": {"entity_id": {"$in": list(counts)}}},
            {"$group": {"_id": "$entity_id", "n": {"$sum": 1}}},
        ]
        async for row in await aggregate(self._c, pipeline):
            counts[row["_id"]] = int(row["n"])
        return counts

    async def for_entity(self, entity_id: str, limit: int) -> list[ChangeEvent]:
        self._trip()
        docs = (
            await self._c.find({"entity_id": entity_id})
            .sort([("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [e for e in map(_stored_event, docs) if isinstance(e, ChangeEvent)]

    async def since(self, seq: int, limit: int) -> list[StoredEvent]:
        self._trip()
        docs = (
            await self._c.find({"_id": {"$gt": seq}, "sealed": {"$exists": False}})
            .sort([("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [_stored_event(d) for d in docs]

    async def entries_after(self, seq: int, limit: int) -> list[LogEntry]:
        # Not counted in ``stats``: the live feed's background tailing is no request's cost,
        # and would make the round trips a test pins for a request vary with timing.
        docs = (
            await self._c.find({"_id": {"$gt": seq}})
            .sort([("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [_log_entry(d) for d in docs]

    async def seal(self, seq: int) -> StoredEvent | None:
        try:
            self._trip()
            await self._c.insert_one({"_id": seq, "sealed": True, "sealed_at": datetime.now(UTC)})
            return None
        except (DuplicateKeyError, OperationFailure) as error:
            if not is_duplicate_key(error):
                raise
        self._trip()
        doc = await self._c.find_one({"_id": seq})
        entry = None if doc is None else _log_entry(doc)
        return entry if isinstance(entry, (ChangeEvent, UnreadableEvent)) else None

    async def floor(self) -> int:
        self._trip()
        doc = await self._counters.find_one({"_id": FLOOR_ID})
        return int(doc["seq"]) if doc else 0

    async def trim(
        self, older_than: datetime | None, beyond: int | None, keep: int, batch: int
    ) -> int:
        # Background work, like ``entries_after``: not a request's round trips.
        counter = await self._counters.find_one({"_id": "events"})
        top = int(counter["seq"]) if counter else 0
        doc = await self._counters.find_one({"_id": FLOOR_ID})
        floor = int(doc["seq"]) if doc else 0
        ceiling = min(top - keep, floor + batch)
        if ceiling <= floor:
            return floor
        target = floor if beyond is None else top - beyond
        if older_than is not None and target < ceiling:
            # The first event in the batch's range still young enough to keep; a range on _id,
            # so the sort reads at most ``batch`` rows (DocumentDB sorts what the filter keeps).
            young = (
                await self._c.find(
                    {"_id": {"$gt": floor, "$lte": ceiling}, "occurred_at": {"$gte": older_than}},
                    {"_id": 1},
                )
                .sort([("_id", ASCENDING)])
                .limit(1)
                .to_list(None)
            )
            target = max(target, int(young[0]["_id"]) - 1 if young else ceiling)
        target = min(target, ceiling)
        if target <= floor:
            return floor
        # The floor moves first: a reader that finds its cursor at or above the floor after
        # reading knows that nothing it read from had been deleted yet.
        for _ in range(2):
            try:
                await self._counters.update_one(
                    {"_id": FLOOR_ID}, {"$max": {"seq": target}}, upsert=True
                )
                break
            except (DuplicateKeyError, OperationFailure) as error:
                # Two instances' first-ever upserts raced; the document exists now.
                if not is_duplicate_key(error):
                    raise
        # No lower bound: also removes what a run that died between the two writes left.
        await self._c.delete_many({"_id": {"$lte": target}})
        return target

    async def head(self) -> int:
        # Not a sort of the whole log: DocumentDB does not walk an index in order, so that read
        # every event (query_shapes.py). Stored numbers come from the counter (a few may pass
        # it where ``$inc`` is not atomic, hence no upper bound), so the highest one lies in a
        # window just below it; the window widens until it holds one.
        self._trip()
        counter = await self._counters.find_one({"_id": "events"})
        top, window = (int(counter["seq"]) if counter else 0), HEAD_WINDOW
        while True:
            floor = top - window
            self._trip()
            docs = (
                await self._c.find({"_id": {"$gt": floor}} if floor > 0 else {}, {"_id": 1})
                .sort([("_id", DESCENDING)])
                .limit(1)
                .to_list(None)
            )
            if docs or floor <= 0:
                return int(docs[0]["_id"]) if docs else 0
            window *= 16

    def _read(self, doc: dict[str, Any]) -> StoredEvent:
        return _stored_event(doc)

    async def ensure_indexes(self) -> None:
        await self._ensure_history_indexes()
        await self._create_indexes(
            [
                IndexModel([("entity_id", ASCENDING), ("_id", ASCENDING)], name="entity_seq"),
                IndexModel(
                    [("event_id", ASCENDING)], unique=True, sparse=True, name="event_id_unique"
                ),
            ]
        )
        await self._create_counter()

    async def _create_counter(self) -> None:
        """The log's counter, made at start-up if missing, so that appends only ever ``$inc``
        a document that exists. On DocumentDB two concurrent first-ever upserts with ``$inc``
        both answered 1 in 8 of 60 trials (the counter ended at 1, not 2), so the first two
        appends of a fresh database took the same number (the loser's insert was refused and it
        took another: correct, three more round trips). A race of two starting instances
        here is harmless: both write 0 if nothing is there."""
        for _ in range(2):
            try:
                await self._counters.update_one(
                    {"_id": "events"}, {"$setOnInsert": {"seq": 0}}, upsert=True
                )
                return
            except (DuplicateKeyError, OperationFailure) as error:
                # Another instance's start-up made it first: it exists now.
                if not is_duplicate_key(error):
                    raise


@dataclass
class _Waiting:
    """An append waiting for the next batch: its event, its answer, its caller's context."""

    event: ChangeEvent
    stored: asyncio.Future[ChangeEvent]
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


def _event_doc(event: ChangeEvent) -> dict[str, Any]:
    doc = documents.event_to_doc(event)
    if event.event_id is None:
        # Only real ids enter the sparse unique index (a stored null would be a key).
        doc.pop("event_id", None)
    return doc


def _duplicate_key(write_error: Mapping[str, Any]) -> bool:
    """A bulk write's error refused by a unique index (as ``is_duplicate_key`` reads one)."""
    return is_duplicate_key(
        OperationFailure(
            str(write_error.get("errmsg", "")), write_error.get("code"), dict(write_error)
        )
    )


def _log_entry(doc: dict[str, Any]) -> LogEntry:
    return SealedSeq(int(doc["_id"])) if doc.get("sealed") else _stored_event(doc)


def _stored_event(doc: dict[str, Any]) -> StoredEvent:
    """The event in ``doc``; an ``UnreadableEvent`` (never an exception) when its header is
    corrupt, so that one bad document cannot stop the feed or a history page."""
    try:
        if not isinstance(doc.get("snapshot"), dict):
            # The change itself can still be read; the record's copy reads as empty, which
            # subscriptions cannot show (they send their marker), while history can.
            doc = {**doc, "snapshot": {}}
        event = documents.event_from_doc(doc)
        for name in ("entity_id", "status", "model_id"):
            if not isinstance(getattr(event, name), str):
                raise TypeError(f"{name} is not a string")
        if not isinstance(event.previous_status, str | None):
            raise TypeError("previous_status is not a string")
        return event
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        entity = doc.get("entity")
        entity_id = doc.get("entity_id")
        return UnreadableEvent(
            seq=int(doc["_id"]),
            entity=EntityKind(entity) if entity in set(EntityKind) else None,
            entity_id=entity_id if isinstance(entity_id, str) else None,
            reason=f"{type(error).__name__}: {error}",
        )
