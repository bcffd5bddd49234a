"""API keys issued while running, in MongoDB: collection ``api_keys`` (``_id`` = the name, so
names are unique; the SHA-256 digest, never the secret), and one revision document in
``api_key_revision`` that every change bumps, so that each instance learns of a change by
reading one small document (``graphql_api.auth.stored_keys``).

No index beyond ``_id``: keys are looked up by digest in each instance's memory, never in the
database, and two random 256-bit secrets do not share a digest; an index would only add a
collection to create within the start-up's database bound.

Also the one read the model scope of a key needs from the registry: the ids of the versions
whose name matches the scope (to filter job lists, whose records hold the version's id only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphql_api.domain.api_keys import ModelScope, StoredApiKey
from graphql_api.domain.errors import ConflictError
from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo.collection import MongoCollection, UpdateGuard, is_duplicate_key
from graphql_api.storage.mongo.failures import bounded_methods

REVISION_ID = "api_keys"


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _to_doc(key: StoredApiKey) -> dict[str, Any]:
    # No ``last_used_at`` until a use is written: ``$max`` against null fails on the mock.
    return {
        "_id": key.name,
        "role": key.role,
        "sha256": key.digest,
        "model_names": list(key.scope.patterns),
        "created_at": key.created_at,
        "created_by": key.created_by,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    }


def _from_doc(doc: Mapping[str, Any]) -> StoredApiKey:
    return StoredApiKey(
        name=doc["_id"],
        role=doc["role"],
        digest=doc["sha256"],
        scope=ModelScope(tuple(doc.get("model_names") or ())),
        created_at=_utc(doc["created_at"]) or datetime.now(UTC),
        created_by=doc.get("created_by"),
        expires_at=_utc(doc.get("expires_at")),
        last_used_at=_utc(doc.get("last_used_at")),
        revoked_at=_utc(doc.get("revoked_at")),
    )


@bounded_methods
class MongoApiKeyStore(MongoCollection):
    def __init__(
        self, keys: Any, revision: Any, versions: Any, stats: StoreStats, guard: UpdateGuard
    ) -> None:
        super().__init__(keys, stats, guard)
        #: Round trips of this store alone (the keys' background poll included).
        self.stats = stats
        self._revision = revision
        self._versions = versions

    async def insert(self, key: StoredApiKey) -> None:
        """ConflictError on ``name`` if a key (revoked ones included) has that name."""
        self._trip()
        try:
            await self._c.insert_one(_to_doc(key))
        except (DuplicateKeyError, OperationFailure) as error:
            if not is_duplicate_key(error):
                raise
            raise ConflictError(
                f"an API key named {key.name!r} exists (names are never reused: they identify "
                "the actor of past changes)",
                field="name",
            ) from None
        await self.bump_revision()

    async def all(self) -> list[StoredApiKey]:
        """Every stored key, revoked and expired ones included, by name."""
        self._trip()
        docs = await self._c.find({}).sort("_id", ASCENDING).to_list(None)
        return [_from_doc(d) for d in docs]

    async def active(self, now: datetime) -> list[StoredApiKey]:
        """The keys that are neither revoked nor expired."""
        self._trip()
        query = {
            "revoked_at": None,
            "$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}],
        }
        return [_from_doc(d) for d in await self._c.find(query).to_list(None)]

    async def any_stored(self) -> bool:
        return await self._exists({})

    async def revoke(self, name: str, now: datetime) -> StoredApiKey | None:
        """Mark the key revoked (idempotent: an already revoked key keeps its first time) and
        bump the revision; None if there is no such key."""
        self._trip()
        doc = await self._c.find_one_and_update(
            {"_id": name, "revoked_at": None},
            {"$set": {"revoked_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            self._trip()
            doc = await self._c.find_one({"_id": name})
            if doc is None:
                return None
        # Bumped also when it was revoked already: a retry after a crash between the two
        # writes still tells every instance.
        await self.bump_revision()
        return _from_doc(doc)

    async def revision(self) -> int:
        """The keys' revision: every instance polls this one small document."""
        self._trip()
        doc = await self._revision.find_one({"_id": REVISION_ID})
        return 0 if doc is None else int(doc["rev"])

    async def bump_revision(self) -> int:
        self._trip()
        doc = await self._revision.find_one_and_update(
            {"_id": REVISION_ID},
            {"$inc": {"rev": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["rev"])

    async def record_use(self, used: Mapping[str, datetime]) -> None:
        """Move each key's ``last_used_at`` forward to at least the given time: one write per
        key used since the last call, however many requests it made (the callers coalesce
        uses; see auth.stored_keys). Not one ``bulk_write``: the in-memory mock lacks it."""
        for name, at in used.items():
            self._trip()
            await self._c.update_one({"_id": name}, {"$max": {"last_used_at": at}})

    async def model_ids_in_scope(self, scope: ModelScope) -> list[str]:
        """Ids of the model versions whose name is in ``scope`` (one round trip)."""
        self._trip()
        cursor = self._versions.find(
            {"model_name": {"$regex": scope.regex()}}, projection={"_id": 1}
        )
        return [d["_id"] for d in await cursor.to_list(None)]
