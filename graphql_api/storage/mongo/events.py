"""The change log in MongoDB."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

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


@bounded_methods
class MongoEventStore(MongoModelHistory, MongoCollection):
    """The change log: ``_id`` is the sequence number, taken from a counter document (``$inc``).

    Taking a number and writing the event are two writes, so concurrent appends can become
    visible out of order, and a writer that dies in between leaves a hole; the live feed's
    reader copes with both (``graphql_api.live.tailer``). The unique ``_id`` is what keeps the
    log sound where ``$inc`` is not atomic across connections (FerretDB v1 can hand one number
    to two writers): the loser of the duplicate key takes another number. A hole sealed by a
    reader is the document ``{_id: seq, sealed: true}``; event queries skip it.
    """

    def __init__(
        self, collection: Any, counters: Any, stats: StoreStats, guard: UpdateGuard
    ) -> None:
        super().__init__(collection, stats, guard)
        self._counters = counters

    async def append(self, event: ChangeEvent) -> ChangeEvent:
        for collisions in range(MAX_APPEND_ATTEMPTS):
            if collisions >= 2:
                # Repeated collisions: the counter lags the log (a lost ``$inc`` on a server
                # without atomic updates). Move it past the highest stored number.
                await self._counter_at_least(await self.head())
            stored = event.model_copy(update={"seq": await self._next_seq()})
            doc = documents.event_to_doc(stored)
            if stored.event_id is None:
                # Only real ids enter the sparse unique index (a stored null would be a key).
                doc.pop("event_id", None)
            try:
                self._trip()
                await self._c.insert_one(doc)
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

    async def _next_seq(self) -> int:
        for _ in range(3):
            self._trip()
            try:
                counter = await self._counters.find_one_and_update(
                    {"_id": "events"},
                    {"$inc": {"seq": 1}},
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
