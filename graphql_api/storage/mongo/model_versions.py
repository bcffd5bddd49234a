"""Model versions in MongoDB."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphql_api.domain.enums import ModelStatus
from graphql_api.domain.errors import ConflictError
from graphql_api.domain.models import ModelVersion
from graphql_api.domain.queries import ModelVersionFilter, ModelVersionOrder, Page, PageRequest
from graphql_api.domain.semver import version_sort_key
from graphql_api.storage import documents
from graphql_api.storage.filters import model_version_query
from graphql_api.storage.mongo.collection import MongoCollection, is_duplicate_key
from graphql_api.storage.mongo.sorts import MODEL_VERSION_SORTS


class MongoModelVersionStore(MongoCollection):
    async def insert(self, version: ModelVersion) -> None:
        self._trip()
        try:
            await self._c.insert_one(documents.model_version_to_doc(version))
        except (DuplicateKeyError, OperationFailure) as error:
            if not is_duplicate_key(error):
                raise
            # Which unique index refused it: servers word the error differently, so ask.
            if await self.get(version.model_id) is not None:
                raise ConflictError(
                    f"a model version with modelId {version.model_id!r} already exists",
                    field="modelId",
                ) from None
            raise await self._version_conflict(version) from None

    async def get(self, model_id: str) -> ModelVersion | None:
        self._trip()
        doc = await self._c.find_one({"_id": model_id})
        return None if doc is None else documents.model_version_from_doc(doc)

    async def get_many(self, model_ids: Sequence[str]) -> dict[str, ModelVersion]:
        if not model_ids:
            return {}
        self._trip()
        docs = await self._c.find({"_id": {"$in": list(model_ids)}}).to_list(None)
        return {d["_id"]: documents.model_version_from_doc(d) for d in docs}

    async def find(
        self, where: ModelVersionFilter, order: ModelVersionOrder, page: PageRequest
    ) -> Page[ModelVersion]:
        docs, cursors, has_next = await self._page(
            model_version_query(where), MODEL_VERSION_SORTS[order], page
        )
        return Page([documents.model_version_from_doc(d) for d in docs], cursors, has_next)

    async def count(self, where: ModelVersionFilter) -> int:
        return await self._count(model_version_query(where))

    async def production(self, model_name: str) -> ModelVersion | None:
        self._trip()
        doc = await self._c.find_one(
            {"production_slot": documents.production_slot("", model_name, ModelStatus.PRODUCTION)}
        )
        return None if doc is None else documents.model_version_from_doc(doc)

    async def latest(self, model_name: str) -> ModelVersion | None:
        self._trip()
        docs = (
            await self._c.find({"model_name": model_name})
            .sort([("version_sort_key", DESCENDING), ("_id", DESCENDING)])
            .limit(1)
            .to_list(None)
        )
        return documents.model_version_from_doc(docs[0]) if docs else None

    async def transition(
        self,
        model_id: str,
        sources: Collection[ModelStatus],
        target: ModelStatus,
        changes: Mapping[str, Any] | None = None,
    ) -> ModelVersion | None:
        name = ""
        if target is ModelStatus.PRODUCTION:
            # The production slot is keyed by the model name, which the caller may not know.
            current = await self.get(model_id)
            if current is None or current.status not in sources:
                return None
            name = current.model_name
        update = {
            **(changes or {}),
            "status": target.value,
            "production_slot": documents.production_slot(model_id, name, target),
        }
        try:
            doc = await self._update_if(model_id, [s.value for s in sources], update)
        except (DuplicateKeyError, OperationFailure) as error:
            if not is_duplicate_key(error):
                raise
            # The only unique key a status change touches is the production slot.
            raise ConflictError(
                f"another version of {name!r} is in production", field="status"
            ) from None
        return None if doc is None else documents.model_version_from_doc(doc)

    async def merge_metrics(
        self,
        model_id: str,
        metrics: Mapping[str, float],
        allowed: Collection[ModelStatus],
        limit: int,
    ) -> ModelVersion | None:
        doc = await self._merge_within(
            model_id, [s.value for s in allowed], {}, "metrics", metrics, limit
        )
        return None if doc is None else documents.model_version_from_doc(doc)

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
        groups = [row["_id"] async for row in self._c.aggregate(pipeline)]
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
        await self._ensure_precedence_unique()
        await self._create_indexes(
            [
                IndexModel(
                    [("model_name", ASCENDING), ("version", ASCENDING)],
                    unique=True,
                    name="model_name_version_unique",
                ),
                IndexModel(
                    [("production_slot", ASCENDING)], unique=True, name="production_slot_unique"
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
            ]
        )
