"""Training jobs in MongoDB."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.errors import ConflictError
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.queries import Page, PageRequest, TrainingJobFilter, TrainingJobOrder
from graphql_api.storage.mongo import documents
from graphql_api.storage.mongo.collection import MongoCollection, is_duplicate_key
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.filters import training_job_query
from graphql_api.storage.mongo.sorts import TRAINING_JOB_SORTS


@bounded_methods
class MongoTrainingJobStore(MongoCollection):
    async def insert(self, job: TrainingJob) -> None:
        self._trip()
        try:
            await self._c.insert_one(documents.training_job_to_doc(job))
        except (DuplicateKeyError, OperationFailure) as error:
            if not is_duplicate_key(error):
                raise
            raise ConflictError(
                f"a training job with jobId {job.job_id!r} already exists", field="jobId"
            ) from None

    async def get(self, job_id: str) -> TrainingJob | None:
        self._trip()
        doc = await self._c.find_one({"_id": job_id})
        return None if doc is None else documents.training_job_from_doc(doc)

    async def get_many(self, job_ids: Sequence[str]) -> dict[str, TrainingJob]:
        if not job_ids:
            return {}
        self._trip()
        docs = await self._c.find({"_id": {"$in": list(job_ids)}}).to_list(None)
        return {d["_id"]: documents.training_job_from_doc(d) for d in docs}

    async def find(
        self, where: TrainingJobFilter, order: TrainingJobOrder, page: PageRequest
    ) -> Page[TrainingJob]:
        docs, cursors, has_next = await self._page(
            training_job_query(where), TRAINING_JOB_SORTS[order], page
        )
        return Page([documents.training_job_from_doc(d) for d in docs], cursors, has_next)

    async def count(self, where: TrainingJobFilter) -> int:
        return await self._count(training_job_query(where))

    async def find_per_model(
        self,
        model_ids: Sequence[str],
        where: TrainingJobFilter,
        order: TrainingJobOrder,
        first: int,
    ) -> dict[str, Page[TrainingJob]]:
        spec = TRAINING_JOB_SORTS[order]
        query = training_job_query(where)
        query["model_id"] = {"$in": list(model_ids)}
        self._trip()
        # One query for all models; each model keeps its first ``first`` (+1 to know whether
        # there is a next page). Reads every matching job of these models in the worst case:
        # fine for the page sizes the API allows, and still one round trip.
        grouped: dict[str, list[dict[str, Any]]] = {m: [] for m in model_ids}
        async for doc in self._c.find(query).sort(spec.mongo_sort):
            bucket = grouped.setdefault(doc["model_id"], [])
            if len(bucket) <= first:
                bucket.append(doc)
        return {
            model_id: Page(
                [documents.training_job_from_doc(d) for d in docs[:first]],
                [spec.cursor_for(d) for d in docs[:first]],
                len(docs) > first,
            )
            for model_id, docs in grouped.items()
        }

    async def count_per_model(
        self, model_ids: Sequence[str], where: TrainingJobFilter
    ) -> dict[str, int]:
        query = training_job_query(where)
        query["model_id"] = {"$in": list(model_ids)}
        self._trip()
        counts = dict.fromkeys(model_ids, 0)
        pipeline = [{"$match": query}, {"$group": {"_id": "$model_id", "n": {"$sum": 1}}}]
        async for row in self._c.aggregate(pipeline):
            counts[row["_id"]] = int(row["n"])
        return counts

    async def update(
        self,
        job_id: str,
        allowed: Collection[TrainingStatus],
        changes: Mapping[str, Any],
        merge_metrics: Mapping[str, float] | None = None,
        metrics_limit: int | None = None,
    ) -> TrainingJob | None:
        update: dict[str, Any] = {
            k: (v.value if isinstance(v, TrainingStatus) else v) for k, v in changes.items()
        }
        if merge_metrics and metrics_limit is not None:
            merged = await self._merge_within(
                job_id, [s.value for s in allowed], update, "metrics", merge_metrics, metrics_limit
            )
            return None if merged is None else documents.training_job_from_doc(merged)
        for key, value in (merge_metrics or {}).items():
            update[f"metrics.{key}"] = value
        doc = await self._update_if(job_id, [s.value for s in allowed], update)
        return None if doc is None else documents.training_job_from_doc(doc)

    async def ensure_indexes(self) -> None:
        await self._create_indexes(
            [
                IndexModel(
                    [("created_date", DESCENDING), ("_id", DESCENDING)], name="created_date"
                ),
                IndexModel(
                    [("status", ASCENDING), ("created_date", DESCENDING)],
                    name="status_created_date",
                ),
                IndexModel(
                    [("model_id", ASCENDING), ("created_date", DESCENDING)],
                    name="model_id_created_date",
                ),
                IndexModel(
                    [("dataset_id", ASCENDING), ("created_date", DESCENDING)],
                    name="dataset_id_created_date",
                ),
                # The started/completed date filters: without these a range on them read the
                # whole collection (found by the explain test, query_shapes.py).
                IndexModel([("started_date", DESCENDING)], name="started_date"),
                IndexModel([("completed_date", DESCENDING)], name="completed_date"),
            ]
        )
