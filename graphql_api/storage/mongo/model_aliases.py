"""Aliases of a model name (``champion``, ``staging``), in its registry document.

They live next to the production pointer in ``model_registry`` (``{_id: <model name>,
aliases: {<alias>: <model id>}, ...}``), so each move is one ``find_one_and_update`` filtered on
the alias's current value: a compare-and-set on one document, the atomicity every supported
server has. The pointer's own fields are not touched (its compare-and-set is on ``revision``),
so alias moves and deployments never refuse each other. Alias names are checked by the service
(``domain/aliases.py``) to be safe field names (no ``.``, no ``$``).

A move carries its event (``ALIAS_SET`` / ``ALIAS_DELETED``, about a version) in the same
write, as every change does (``outbox.py``): the registry document's ``pending_event``, since
that is the document the move writes (the version's document is not written at all). While it
is set, no other alias of the name moves (the name's alias events keep the order of the moves);
the production pointer's moves do not look at it. The relay builds the event from the pending
entry and the version as stored when it relays.

On FerretDB v1, where conditional updates are not atomic across connections (the claim guard),
two concurrent moves of one alias could both succeed; the production pointer is guarded there,
aliases are not (docs/real-server.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument

from graphql_api.domain.models import ModelVersion
from graphql_api.storage.base import PendingChange, RecordBusy
from graphql_api.storage.mongo.collection import (
    MongoCollection,
    create_missing_indexes,
    retry_transient,
)
from graphql_api.storage.mongo.documents import MODEL_VERSIONS
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.outbox import PENDING, pending_doc, pending_from_doc

#: The sweep's index on ``model_registry`` (sparse: only names with a pending alias event).
ALIAS_PENDING_INDEX = IndexModel(
    [(f"{PENDING}.occurred_at", ASCENDING)], sparse=True, name="alias_pending_occurred_at"
)


@bounded_methods
class MongoModelAliases(MongoCollection):
    _registry: Any

    async def aliases_of(self, model_names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each name's aliases (alias -> model id), one round trip; {} for a name without."""
        found: dict[str, dict[str, str]] = {name: {} for name in model_names}
        if not model_names:
            return found
        self._trip()
        cursor = self._registry.find(
            {"_id": {"$in": list(model_names)}}, projection={"aliases": True}
        )
        async for doc in cursor:
            found[doc["_id"]] = dict(doc.get("aliases") or {})
        return found

    async def move_alias(
        self,
        model_name: str,
        alias: str,
        model_id: str | None,
        expected: str | None,
        limit: int,
        *,
        pending: PendingChange | None = None,
    ) -> bool:
        """Compare-and-set: point ``alias`` at ``model_id`` (None: delete it) if it names
        ``expected`` now (None: if it does not exist, and the name has fewer than ``limit``
        aliases). The name's registry document must exist (``production_pointer`` creates it).
        Whether it moved."""
        path = f"aliases.{alias}"
        # {path: None} matches a missing field too: "no such alias yet".
        query: dict[str, Any] = {"_id": model_name, path: expected}
        update: dict[str, Any]
        if model_id is None:
            update = {"$unset": {path: ""}, "$inc": {"alias_count": -1}}
        elif expected is None:
            # A new alias: counted in the same write, so the limit holds under races too.
            query["alias_count"] = {"$not": {"$gte": limit}}
            update = {"$set": {path: model_id}, "$inc": {"alias_count": 1}}
        else:
            update = {"$set": {path: model_id}}
        if pending is not None:
            query[PENDING] = None  # matches a missing field too (documents from before)
            update.setdefault("$set", {})[PENDING] = pending_doc(pending)
        self._trip()
        doc = await retry_transient(
            lambda: self._registry.find_one_and_update(
                query, update, return_document=ReturnDocument.AFTER
            ),
            "moving an alias",
        )
        if doc is None and pending is not None:
            # Told apart from a compare that failed: only the pending condition did.
            others = {k: v for k, v in query.items() if k != PENDING}
            self._trip()
            if await self._registry.find_one(others, {"_id": 1}) is not None:
                raise RecordBusy(model_name)
        return doc is not None

    async def alias_pending_change(
        self, model_name: str
    ) -> tuple[ModelVersion, PendingChange] | None:
        self._trip()
        doc = await self._registry.find_one(
            {"_id": model_name, PENDING: {"$type": "object"}}, {PENDING: True}
        )
        if doc is None:
            return None
        found = await self._with_versions([doc])
        return found[0] if found else None

    async def alias_pending_before(
        self, before: datetime, limit: int
    ) -> list[tuple[ModelVersion, PendingChange]]:
        # Background work (the sweep): not a request's round trips.
        docs = (
            await self._registry.find({f"{PENDING}.occurred_at": {"$lt": before}}, {PENDING: True})
            .sort([(f"{PENDING}.occurred_at", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return await self._with_versions([d for d in docs if isinstance(d.get(PENDING), dict)])

    async def clear_alias_pending(self, model_name: str, event_id: str) -> None:
        self._trip()
        await retry_transient(
            lambda: self._registry.update_one(
                {"_id": model_name, f"{PENDING}.event_id": event_id}, {"$set": {PENDING: None}}
            ),
            "clearing the recorded alias change",
        )

    async def _with_versions(
        self, docs: Sequence[dict[str, Any]]
    ) -> list[tuple[ModelVersion, PendingChange]]:
        """Each pending alias change with the version it is about (one round trip). A version
        is never deleted, so each is found."""
        pendings = [pending_from_doc(d[PENDING]) for d in docs]
        ids = [p.model_id for p in pendings if p.model_id is not None]
        if not ids:
            return []
        self._trip()
        versions = {
            d["_id"]: MODEL_VERSIONS.from_doc(d) async for d in self._c.find({"_id": {"$in": ids}})
        }
        return [(versions[p.model_id], p) for p in pendings if p.model_id in versions]

    async def _ensure_alias_outbox_index(self) -> None:
        self._trip()
        await create_missing_indexes(self._registry, [ALIAS_PENDING_INDEX])
