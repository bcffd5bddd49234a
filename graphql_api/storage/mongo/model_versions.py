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
from graphql_api.storage import documents
from graphql_api.storage.filters import model_version_query
from graphql_api.storage.mongo.collection import MongoCollection, is_duplicate_key
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.sorts import MODEL_VERSION_SORTS


@bounded_methods
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
            raise ConflictError(
                f"model {version.model_name!r} already has version {version.version!r}",
                field="version",
            ) from None

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
        self, model_id: str, metrics: Mapping[str, float], allowed: Collection[ModelStatus]
    ) -> ModelVersion | None:
        # Keys are validated (no '.' or '$'), so each names exactly one metric.
        doc = await self._update_if(
            model_id,
            [s.value for s in allowed],
            {f"metrics.{k}": v for k, v in metrics.items()},
        )
        return None if doc is None else documents.model_version_from_doc(doc)

    async def ensure_indexes(self) -> None:
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
