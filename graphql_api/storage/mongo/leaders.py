"""Leader leases in MongoDB: one document per lease, ``{_id: name, holder, expires_at}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo.collection import MongoCollection, UpdateGuard, is_duplicate_key
from graphql_api.storage.mongo.failures import bounded_methods


@bounded_methods
class MongoLeaderStore(MongoCollection):
    """Taking a lease is one conditional update (held by this holder, or expired), or, for a
    lease never taken, one insert that a unique ``_id`` lets only one caller make. Where
    conditional updates are not atomic (FerretDB v1, ``UpdateGuard``), the takeover goes
    through the guard's claim on the lease document's revision."""

    def __init__(self, collection: Any, stats: StoreStats, guard: UpdateGuard) -> None:
        super().__init__(collection, stats, guard)

    async def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        query = {"_id": name, "$or": [{"holder": holder}, {"expires_at": {"$lt": now}}]}
        if self._guard.enabled:
            doc = await self._conditional(
                query, {"holder": holder, "expires_at": until}, "taking a leader lease"
            )
        else:
            self._trip()
            doc = await self._c.find_one_and_update(
                query,
                {"$set": {"holder": holder, "expires_at": until}, "$inc": {"rev": 1}},
                return_document=ReturnDocument.AFTER,
            )
        if doc is not None:
            return True
        try:
            self._trip()
            await self._c.insert_one({"_id": name, "holder": holder, "expires_at": until, "rev": 0})
        except (DuplicateKeyError, OperationFailure) as error:
            if not is_duplicate_key(error):
                raise
            return False  # held by another, whose lease has not expired
        return True

    async def release(self, name: str, holder: str) -> None:
        self._trip()
        await self._c.delete_one({"_id": name, "holder": holder})
