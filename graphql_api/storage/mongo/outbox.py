"""The per-record outbox: a change's event travels inside the record's own write.

Every write that changes a record (its insert, or its conditional update) also sets the
record's ``pending_event``: the header of the change's event, with the id the event will have
in the log. It is one write of one document, so it is atomic on every supported server (there
are no transactions on FerretDB v2). While it is set, the record takes no other change (an
update filters on ``pending_event: None``), so the record as stored *is* the record as of that
event, and a relay can build the whole event from the document alone. The relay
(``graphql_api.services.outbox``) appends the event to the log, idempotently by its id, and
clears ``pending_event``.

A sparse index on ``pending_event.occurred_at`` holds only the records with a pending event
(a cleared one is ``null``, which has no ``occurred_at``), so the server's background sweep
for what a crash left behind reads those, not the collection.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, IndexModel

from graphql_api.domain.events import ChangeKind
from graphql_api.domain.updates import Change
from graphql_api.storage.base import PendingChange, RecordBusy
from graphql_api.storage.mongo.collection import retry_transient
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.records import MongoRecordStore, O, R, W

#: The storage-only field holding a record's change whose event is not yet in the log.
PENDING = "pending_event"

#: The sweep's index (sparse: only records with a pending event are in it).
PENDING_INDEX = IndexModel(
    [(f"{PENDING}.occurred_at", ASCENDING)], sparse=True, name="pending_event_occurred_at"
)


def pending_doc(pending: PendingChange) -> dict[str, Any]:
    return {
        "event_id": pending.event_id,
        "kind": pending.kind.value,
        "previous_status": pending.previous_status,
        "occurred_at": pending.occurred_at,
        "actor": pending.actor,
        "keeps_status": pending.keeps_status,
        "reason": pending.reason,
        "previous_model_id": pending.previous_model_id,
        "alias": pending.alias,
        "model_id": pending.model_id,
    }


def pending_from_doc(doc: Mapping[str, Any]) -> PendingChange:
    return PendingChange(
        event_id=doc["event_id"],
        kind=ChangeKind(doc["kind"]),
        previous_status=doc.get("previous_status"),
        occurred_at=doc["occurred_at"].replace(tzinfo=UTC),
        actor=doc.get("actor"),
        keeps_status=bool(doc.get("keeps_status", False)),
        reason=doc.get("reason"),
        previous_model_id=doc.get("previous_model_id"),
        alias=doc.get("alias"),
        model_id=doc.get("model_id"),
    )


def unless_pending(
    pending: PendingChange | None, logged_event_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The condition and the ``$set`` of an update that records ``pending`` (none: neither).
    A missing field matches the condition too (records written before the outbox).

    ``logged_event_id``: the id of a pending change of this record whose event the caller knows
    is in the log (its relay appended it and left the clearing for later: ``services.outbox``);
    the update may then replace that change too, which clears it in the same write. (An
    ``$or``, not ``{"pending_event.event_id": {"$in": [None, id]}}``: mongomock does not match a
    null ``pending_event`` with that.)"""
    if pending is None:
        return {}, {}
    if logged_event_id is None:
        return {PENDING: None}, {PENDING: pending_doc(pending)}
    either = [{PENDING: None}, {f"{PENDING}.event_id": logged_event_id}]
    return {"$or": either}, {PENDING: pending_doc(pending)}


@bounded_methods
class MongoOutboxStore(MongoRecordStore[R, W, O]):
    """A record store whose records carry their pending change (see the module)."""

    async def _insert_pending(self, record: R, pending: PendingChange | None) -> None:
        await self._insert(record, None if pending is None else {PENDING: pending_doc(pending)})

    async def pending_change(self, record_id: str) -> tuple[R, PendingChange] | None:
        self._trip()
        doc = await self._c.find_one({"_id": record_id, PENDING: {"$type": "object"}})
        if doc is None:
            return None
        return self._mapping.from_doc(doc), pending_from_doc(doc[PENDING])

    async def pending_before(self, before: datetime, limit: int) -> list[tuple[R, PendingChange]]:
        # Background work (the sweep): not a request's round trips.
        docs = (
            await self._c.find({f"{PENDING}.occurred_at": {"$lt": before}})
            .sort([(f"{PENDING}.occurred_at", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [
            (self._mapping.from_doc(d), pending_from_doc(d[PENDING]))
            for d in docs
            if isinstance(d.get(PENDING), dict)
        ]

    async def clear_pending(self, record_id: str, event_id: str) -> None:
        # Not a change of the record: the revision stays, so no reader's update is refused.
        self._trip()
        await retry_transient(
            lambda: self._c.update_one(
                {"_id": record_id, f"{PENDING}.event_id": event_id}, {"$set": {PENDING: None}}
            ),
            "clearing the recorded change",
        )

    async def clear_relayed(self, relayed: Sequence[tuple[str, str]]) -> None:
        """``clear_pending`` of many (record id, event id) pairs in one round trip. One
        ``update_many`` on both lists: an event id is a change's own (a UUID), so a record
        whose pending change has one of them has its own, and the pairs need no ``$or`` (nor a
        bulk write, which mongomock cannot do with this PyMongo)."""
        if not relayed:
            return
        self._trip()
        query = {
            "_id": {"$in": [record_id for record_id, _ in relayed]},
            f"{PENDING}.event_id": {"$in": [event_id for _, event_id in relayed]},
        }
        await retry_transient(
            lambda: self._c.update_many(query, {"$set": {PENDING: None}}),
            "clearing the recorded changes",
        )

    async def _update_or_busy(
        self,
        record_id: str,
        sources: Collection[StrEnum],
        changes: Sequence[Change],
        *,
        where: Mapping[str, Any],
        pending_where: Mapping[str, Any],
        also_set: Mapping[str, Any],
    ) -> R | None:
        """``_update`` on ``where`` and the pending condition ``pending_where`` (from
        ``unless_pending``); RecordBusy instead of None when only the pending condition failed.

        Checked after the update with ``where`` alone: the change that blocked it may have
        been relayed in between (then the retry simply applies). Told apart from a record that
        is gone, in another status or failing another condition of ``where``, which is None
        as always. The two come apart so that an ``$or`` of ``where`` (a version that reached
        production before a revision) is never taken for the pending condition's ``$or``: it
        was, and an archive refused by it was reported busy, retried and settled 100 times."""
        found = await self._update(
            record_id, sources, changes, where=_both(where, pending_where), also_set=also_set
        )
        if found is None and pending_where:
            query = {"_id": record_id, "status": {"$in": [s.value for s in sources]}, **where}
            self._trip()
            if await self._c.find_one(query, {"_id": 1}) is not None:
                raise RecordBusy(record_id)
        return found

    async def _ensure_outbox_index(self) -> None:
        await self._create_indexes([PENDING_INDEX])


def _both(where: Mapping[str, Any], pending_where: Mapping[str, Any]) -> dict[str, Any]:
    """The conditions of ``where`` and ``pending_where`` (an ``$and`` where both use one key,
    such as ``$or``: a merged dict would keep only the second)."""
    if where.keys() & pending_where.keys():
        return {"$and": [dict(where), dict(pending_where)]}
    return {**where, **pending_where}
