"""Model versions in MongoDB, and each model name's production pointer.

The pointer is one document per model name in ``model_registry``: ``{_id: <model name>,
model_id, revision, previous_model_id, held}``. It moves by one
``find_one_and_update`` filtered on ``revision`` (a compare-and-set on a single document: the
only atomicity every supported server has; there are no transactions on FerretDB v2), or by
the ``insert_one`` that creates it (a unique ``_id``). A version that reaches production records
the pointer revision in ``production_revision`` (storage only), which lets a late sweep of
displaced versions tell them apart from the current one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphql_api.domain.enums import ModelStatus
from graphql_api.domain.errors import ConflictError
from graphql_api.domain.models import ModelVersion
from graphql_api.domain.queries import ModelVersionFilter, ModelVersionOrder
from graphql_api.domain.semver import version_sort_key
from graphql_api.domain.updates import Change, Move
from graphql_api.domain.values import utc_now
from graphql_api.storage.base import PendingChange, ProductionPointer, Revisioned, StoreStats
from graphql_api.storage.mongo.client import aggregate
from graphql_api.storage.mongo.collection import (
    MAX_UPDATE_ATTEMPTS,
    UpdateGuard,
    is_duplicate_key,
    retry_transient,
)
from graphql_api.storage.mongo.documents import MODEL_VERSIONS
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.filters import model_version_query
from graphql_api.storage.mongo.model_aliases import MongoModelAliases
from graphql_api.storage.mongo.model_catalog import MongoModelCatalog
from graphql_api.storage.mongo.model_metadata import MongoModelMetadata
from graphql_api.storage.mongo.outbox import PENDING, MongoOutboxStore, unless_pending
from graphql_api.storage.mongo.sorts import MODEL_VERSION_SORTS


@bounded_methods
class MongoModelVersionStore(
    MongoModelAliases,
    MongoModelCatalog,
    MongoModelMetadata,
    MongoOutboxStore[ModelVersion, ModelVersionFilter, ModelVersionOrder],
):
    def __init__(
        self, collection: Any, registry: Any, stats: StoreStats, guard: UpdateGuard
    ) -> None:
        super().__init__(
            collection,
            stats,
            guard,
            mapping=MODEL_VERSIONS,
            query=model_version_query,
            sorts=MODEL_VERSION_SORTS,
            inserting="registering the version",
            changing="changing the version",
        )
        self._registry = registry

    async def insert(self, version: ModelVersion, pending: PendingChange | None = None) -> None:
        await self._insert_pending(version, pending)

    async def _duplicate(self, record: ModelVersion) -> ConflictError:
        # Which unique index refused it: servers word the error differently, so ask.
        if await self.get(record.model_id) is not None:
            return ConflictError(
                f"a model version with modelId {record.model_id!r} already exists",
                field="modelId",
            )
        return await self._version_conflict(record)

    # The production pointer -------------------------------------------------------------

    async def read_production_pointer(self, model_name: str) -> ProductionPointer | None:
        self._trip()
        doc = await self._registry.find_one({"_id": model_name})
        return None if doc is None else _pointer(doc)

    async def production_pointer(self, model_name: str) -> ProductionPointer:
        found = await self.read_production_pointer(model_name)
        if found is not None:
            return found
        # Written before pointers existed (or never deployed): the status is the truth, and
        # the old unique production slot kept it to at most one version.
        holder = await self.newest_in_production(model_name)
        doc = {
            "_id": model_name,
            "model_id": None if holder is None else holder.model_id,
            "revision": 0,
            "previous_model_id": None,
            # Versions that held the pointer (and reached production); see move_production.
            "held": [] if holder is None else [holder.model_id],
        }
        try:
            self._trip()
            await retry_transient(lambda: self._registry.insert_one(doc), "creating the pointer")
            return _pointer(doc)
        except (DuplicateKeyError, OperationFailure) as error:
            if not is_duplicate_key(error):
                raise
        # A concurrent caller created it first: theirs stands.
        created = await self.read_production_pointer(model_name)
        if created is None:
            raise RuntimeError(f"the production pointer of {model_name!r} vanished")
        return created

    async def move_production(
        self,
        pointer: ProductionPointer,
        model_id: str | None,
        *,
        first_holding: bool = False,
    ) -> ProductionPointer | None:
        revision = pointer.revision + 1
        changes = {
            "model_id": model_id,
            "revision": revision,
            "previous_model_id": pointer.model_id,
            "moved_at": utc_now(),
        }
        query: dict[str, Any] = {"_id": pointer.model_name, "revision": pointer.revision}
        update: dict[str, Any] = {"$set": changes}
        if model_id is not None and first_holding:
            # New to ``held`` by the filter. Never ``$addToSet`` an element that may be there
            # already together with ``$set``: DocumentDB then fails the ~20th such update of
            # the document with "Size 30408734 is larger than MaxDocumentSize" (the size it
            # computes doubles each time; found by rollbacks back and forth, which move the
            # pointer to versions that held it; docs/real-server.md).
            query["held"] = {"$ne": model_id}
            update["$push"] = {"held": model_id}
        guard = self._guard
        claim = f"{self._registry.name}:{pointer.model_name}:{pointer.revision}"
        if guard.enabled and not await self._claim_pointer(pointer, claim):
            return None
        try:
            self._trip()
            doc = await retry_transient(
                lambda: self._registry.find_one_and_update(
                    query, update, return_document=ReturnDocument.AFTER
                ),
                "moving the production pointer",
            )
        finally:
            if guard.enabled:
                self._trip()
                await guard.claims.delete_one({"_id": claim})
        if doc is None:
            return None
        if model_id is not None and not first_holding:
            # A version that may have held it before (an undo, a rollback): recorded apart.
            self._trip()
            await retry_transient(
                lambda: self._registry.update_one(
                    {"_id": pointer.model_name, "held": {"$ne": model_id}},
                    {"$push": {"held": model_id}},
                ),
                "recording a holding of the production pointer",
            )
        return _pointer(doc)

    async def _claim_pointer(self, pointer: ProductionPointer, claim: str) -> bool:
        """Under the claim guard: claim the move from ``pointer.revision``. Another writer's
        claim is waited out (bounded): False only once the pointer has moved on, as the
        contract's None means, or it stays ours to try."""
        for attempt in range(MAX_UPDATE_ATTEMPTS):
            if await self._claim(claim):
                return True
            await asyncio.sleep(min(0.001 * 2**attempt, 0.05))
            now = await self.read_production_pointer(pointer.model_name)
            if now is None or now.revision != pointer.revision:
                return False
        raise ConflictError(
            f"the production pointer of {pointer.model_name!r} is being moved by too many "
            "writers at once; retry",
            field="modelId",
        )

    async def release_holding(self, model_name: str, model_id: str) -> None:
        self._trip()
        await retry_transient(
            lambda: self._registry.update_one({"_id": model_name}, {"$pull": {"held": model_id}}),
            "releasing a holding of the production pointer",
        )

    async def newest_in_production(self, model_name: str) -> ModelVersion | None:
        self._trip()
        docs = (
            await self._c.find({"model_name": model_name, "status": ModelStatus.PRODUCTION.value})
            .sort([("deployed_date", DESCENDING), ("_id", DESCENDING)])
            .limit(1)
            .to_list(None)
        )
        return MODEL_VERSIONS.from_doc(docs[0]) if docs else None

    async def newest_in_production_of(self, model_names: Sequence[str]) -> dict[str, ModelVersion]:
        if not model_names:
            return {}
        self._trip()
        # Every production version of these names: at most two per name (one only outside a
        # hand-over), so the read is bounded by the names asked.
        query = {"model_name": {"$in": list(model_names)}, "status": ModelStatus.PRODUCTION.value}
        sort = [("deployed_date", DESCENDING), ("_id", DESCENDING)]
        newest: dict[str, ModelVersion] = {}
        async for doc in self._c.find(query).sort(sort):
            newest.setdefault(doc["model_name"], MODEL_VERSIONS.from_doc(doc))
        return newest

    async def displaced_in_production(
        self, model_name: str, keep: str | None, before: int
    ) -> list[ModelVersion]:
        self._trip()
        docs = await self._c.find(
            {
                "model_name": model_name,
                "status": ModelStatus.PRODUCTION.value,
                "_id": {"$ne": keep},
                **_reached_production_before(before),
            }
        ).to_list(None)
        return [MODEL_VERSIONS.from_doc(d) for d in docs]

    async def get_revisioned(self, model_id: str) -> Revisioned | None:
        self._trip()
        doc = await self._c.find_one({"_id": model_id})
        return None if doc is None else _revisioned(doc)

    async def get_many_revisioned(self, model_ids: Sequence[str]) -> dict[str, Revisioned]:
        if not model_ids:
            return {}
        self._trip()
        docs = await self._c.find({"_id": {"$in": list(model_ids)}}).to_list(None)
        return {d["_id"]: _revisioned(d) for d in docs}

    async def read_production_pointers(
        self, model_names: Sequence[str]
    ) -> dict[str, ProductionPointer]:
        if not model_names:
            return {}
        self._trip()
        docs = await self._registry.find({"_id": {"$in": list(model_names)}}).to_list(None)
        return {d["_id"]: _pointer(d) for d in docs}

    async def touch(self, model_id: str, sources: Collection[ModelStatus]) -> bool:
        return await self._update(model_id, sources, ()) is not None

    # Versions --------------------------------------------------------------------------

    async def latest_of(self, model_names: Sequence[str]) -> dict[str, ModelVersion]:
        if not model_names:
            return {}
        # Two round trips whatever the number of names: each name's highest precedence, then
        # the versions holding it (twins stored before the precedence rule share one: the
        # highest id wins, as in ``latest``).
        self._trip()
        pipeline = [
            {"$match": {"model_name": {"$in": list(model_names)}}},
            {"$group": {"_id": "$model_name", "top": {"$max": "$version_sort_key"}}},
        ]
        tops = [(row["_id"], row["top"]) async for row in await aggregate(self._c, pipeline)]
        if not tops:
            return {}
        self._trip()
        query = {"$or": [{"model_name": name, "version_sort_key": top} for name, top in tops]}
        latest: dict[str, ModelVersion] = {}
        async for doc in self._c.find(query).sort([("_id", DESCENDING)]):
            latest.setdefault(doc["model_name"], MODEL_VERSIONS.from_doc(doc))
        return latest

    async def latest(self, model_name: str) -> ModelVersion | None:
        self._trip()
        docs = (
            await self._c.find({"model_name": model_name})
            .sort([("version_sort_key", DESCENDING), ("_id", DESCENDING)])
            .limit(1)
            .to_list(None)
        )
        return MODEL_VERSIONS.from_doc(docs[0]) if docs else None

    async def update(
        self,
        model_id: str,
        sources: Collection[ModelStatus],
        changes: Sequence[Change],
        *,
        at_revision: int | None = None,
        production_revision: int | None = None,
        before_production_revision: int | None = None,
        pending: PendingChange | None = None,
    ) -> ModelVersion | None:
        pending_where, also_set = unless_pending(pending)
        if production_revision is not None:
            also_set["production_revision"] = production_revision
        if also_set or any(isinstance(c, Move) for c in changes):
            # A change (or a production holding) waits for the one still pending; a missing
            # field matches too (documents written before pending changes existed).
            pending_where = {PENDING: None}
        where: dict[str, Any] = {}
        if at_revision is not None:
            where["rev"] = at_revision
        if before_production_revision is not None:
            where.update(_reached_production_before(before_production_revision))
        return await self._update_or_busy(
            model_id, sources, changes, where=where, pending_where=pending_where, also_set=also_set
        )

    async def _version_conflict(self, version: ModelVersion) -> ConflictError:
        """The ConflictError for a (name, version) or (name, precedence) that is taken."""
        self._trip()
        taken = await self._c.find_one(
            {
                "model_name": version.model_name,
                "version_sort_key": version_sort_key(version.version),
                "precedence_twin": "",
            }
        )
        if taken is None or taken["version"] == version.version:
            return ConflictError(
                f"model {version.model_name!r} already has version {version.version!r}",
                field="version",
            )
        return ConflictError(
            f"model {version.model_name!r} already has version {taken['version']!r}, which "
            f"differs from {version.version!r} only in build metadata: SemVer gives both the "
            "same precedence, so they cannot both be registered",
            field="version",
        )

    async def _ensure_precedence_unique(self) -> None:
        """At most one version per (model name, SemVer precedence): build metadata alone does
        not make a new version (SemVer ranks 1.0.0+a and 1.0.0+b equal, so ``latest`` could not
        choose). A unique index over (name, precedence, ``precedence_twin``) enforces it under
        concurrent registrations. New records have ``precedence_twin`` "". Records stored
        before the rule keep loading: each extra member of an equal-precedence group keeps its
        own id there (the earliest registered keeps ""), so the index can be built over them.
        """
        self._trip()
        await self._c.update_many(
            {"precedence_twin": {"$exists": False}}, {"$set": {"precedence_twin": ""}}
        )
        self._trip()
        pipeline = [
            {"$match": {"precedence_twin": ""}},
            {"$group": {"_id": {"n": "$model_name", "k": "$version_sort_key"}, "n": {"$sum": 1}}},
            {"$match": {"n": {"$gt": 1}}},
        ]
        groups = [row["_id"] async for row in await aggregate(self._c, pipeline)]
        for group in groups:
            self._trip()
            twins = (
                await self._c.find({"model_name": group["n"], "version_sort_key": group["k"]})
                .sort([("created_date", ASCENDING), ("_id", ASCENDING)])
                .to_list(None)
            )
            for twin in twins[1:]:
                self._trip()
                await self._c.update_one(
                    {"_id": twin["_id"]}, {"$set": {"precedence_twin": twin["_id"]}}
                )
        await self._create_indexes(
            [
                IndexModel(
                    [
                        ("model_name", ASCENDING),
                        ("version_sort_key", ASCENDING),
                        ("precedence_twin", ASCENDING),
                    ],
                    unique=True,
                    name="model_name_precedence_unique",
                )
            ]
        )

    async def ensure_indexes(self) -> None:
        # The production pointer replaced the unique production slot (it refused the moment
        # of a hand-over when both versions are in production; see ModelRegistryService).
        self._trip()
        existing = await self._c.index_information()
        if "production_slot_unique" in existing:
            await self._c.drop_index("production_slot_unique")
        await self._ensure_precedence_unique()
        await self._ensure_outbox_index()
        await self._ensure_alias_outbox_index()
        await self._ensure_metadata_indexes()
        await self._backfill_catalog()
        await self._create_indexes(
            [
                IndexModel(
                    [("model_name", ASCENDING), ("version", ASCENDING)],
                    unique=True,
                    name="model_name_version_unique",
                ),
                IndexModel(
                    [("model_name", ASCENDING), ("version_sort_key", DESCENDING)],
                    name="model_name_semver",
                ),
                IndexModel(
                    [("created_date", DESCENDING), ("_id", DESCENDING)], name="created_date"
                ),
                IndexModel(
                    [("status", ASCENDING), ("created_date", DESCENDING)],
                    name="status_created_date",
                ),
                IndexModel([("version_sort_key", DESCENDING), ("_id", DESCENDING)], name="semver"),
                # The model type and deployed date filters (found by the explain test,
                # query_shapes.py: without these they read the whole collection).
                IndexModel([("model_type", ASCENDING)], name="model_type"),
                IndexModel([("deployed_date", DESCENDING)], name="deployed_date"),
                # filter.tags: {tags: {$elemMatch: {key, value: {$in}}}} (a multikey index).
                IndexModel([("tags.key", ASCENDING), ("tags.value", ASCENDING)], name="tags"),
            ]
        )


def _reached_production_before(revision: int) -> dict[str, Any]:
    # A version deployed before pointers existed has no production_revision: it counts as 0.
    return {
        "$or": [
            {"production_revision": {"$lt": revision}},
            {"production_revision": {"$exists": False}},
        ]
    }


def _revisioned(doc: Mapping[str, Any]) -> Revisioned:
    version = MODEL_VERSIONS.from_doc(doc)
    reached = doc.get("production_revision")
    return Revisioned(
        version,
        int(doc.get("rev", 0)),
        None
        if version.status is not ModelStatus.PRODUCTION
        else 0
        if reached is None
        else int(reached),
    )


def _pointer(doc: Mapping[str, Any]) -> ProductionPointer:
    return ProductionPointer(
        model_name=doc["_id"],
        model_id=doc.get("model_id"),
        revision=int(doc["revision"]),
        previous_model_id=doc.get("previous_model_id"),
    )
