"""The MongoDB implementation of the storage contract: the only module that imports the driver.

Motor is the async driver today; PyMongo's async client has the same collection API, so a move
touches only ``connect`` here. With no URI, ``connect`` gives an in-memory mongomock-motor client
(the embedded default for trying the product: nothing is kept).

Only features that MongoDB and the MongoDB-compatible servers we support share are used:
``find_one_and_update`` for atomic conditional updates, plain unique indexes, ``$in``/``$or``
filters, sorts and limits. No transactions, change streams, ``$lookup``, ``$facet`` or partial
indexes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from graphql_api.domain.enums import ModelStatus, TrainingStatus
from graphql_api.domain.errors import ConflictError
from graphql_api.domain.events import ChangeEvent
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import (
    DateRange,
    ModelVersionFilter,
    ModelVersionOrder,
    Page,
    PageRequest,
    TrainingJobFilter,
    TrainingJobOrder,
)
from graphql_api.storage import documents
from graphql_api.storage.base import StoreStats
from graphql_api.storage.keyset import SortField, SortSpec

_MV_SORTS: dict[ModelVersionOrder, SortSpec] = {
    order: SortSpec(order.value, fields)
    for order, fields in {
        ModelVersionOrder.CREATED_DATE_DESC: (
            SortField("created_date", DESCENDING, "datetime"),
            SortField("_id", DESCENDING),
        ),
        ModelVersionOrder.CREATED_DATE_ASC: (
            SortField("created_date", ASCENDING, "datetime"),
            SortField("_id", ASCENDING),
        ),
        ModelVersionOrder.VERSION_DESC: (
            SortField("version_sort_key", DESCENDING),
            SortField("_id", DESCENDING),
        ),
        ModelVersionOrder.VERSION_ASC: (
            SortField("version_sort_key", ASCENDING),
            SortField("_id", ASCENDING),
        ),
    }.items()
}

_JOB_SORTS: dict[TrainingJobOrder, SortSpec] = {
    TrainingJobOrder.CREATED_DATE_DESC: SortSpec(
        "CREATED_DATE_DESC",
        (SortField("created_date", DESCENDING, "datetime"), SortField("_id", DESCENDING)),
    ),
    TrainingJobOrder.CREATED_DATE_ASC: SortSpec(
        "CREATED_DATE_ASC",
        (SortField("created_date", ASCENDING, "datetime"), SortField("_id", ASCENDING)),
    ),
}


def connect(uri: str | None, database: str) -> Any:
    """A database handle: a real server for ``uri``, else an in-memory mock."""
    if uri:
        from motor.motor_asyncio import AsyncIOMotorClient

        client: Any = AsyncIOMotorClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)
    else:
        from mongomock_motor import AsyncMongoMockClient

        client = AsyncMongoMockClient(tz_aware=True)
    return client[database]


def _in(values: Sequence[Any] | None) -> dict[str, Any] | None:
    return None if values is None else {"$in": [str(v) for v in values]}


def _range(bounds: DateRange | None) -> dict[str, Any] | None:
    if bounds is None or (bounds.since is None and bounds.until is None):
        return None
    query: dict[str, Any] = {}
    if bounds.since is not None:
        query["$gte"] = bounds.since
    if bounds.until is not None:
        query["$lte"] = bounds.until
    return query


def _query(conditions: Mapping[str, dict[str, Any] | None]) -> dict[str, Any]:
    return {name: cond for name, cond in conditions.items() if cond is not None}


def model_version_query(where: ModelVersionFilter) -> dict[str, Any]:
    return _query(
        {
            "_id": _in(where.model_ids),
            "model_name": _in(where.model_names),
            "status": _in(where.statuses),
            "model_type": _in(where.model_types),
            "created_date": _range(where.created),
            "deployed_date": _range(where.deployed),
        }
    )


def training_job_query(where: TrainingJobFilter) -> dict[str, Any]:
    return _query(
        {
            "_id": _in(where.job_ids),
            "model_id": _in(where.model_ids),
            "dataset_id": _in(where.dataset_ids),
            "status": _in(where.statuses),
            "created_date": _range(where.created),
            "started_date": _range(where.started),
            "completed_date": _range(where.completed),
        }
    )


class _Collection:
    """Shared plumbing: round-trip counting and keyset pages."""

    def __init__(self, collection: Any, stats: StoreStats) -> None:
        self._c = collection
        self._stats = stats

    def _trip(self) -> None:
        self._stats.round_trips += 1

    async def _page(
        self, query: dict[str, Any], spec: SortSpec, page: PageRequest
    ) -> tuple[list[dict[str, Any]], list[str], bool]:
        if page.after:
            query = {"$and": [query, spec.after_filter(page.after)]} if query else (
                spec.after_filter(page.after)
            )
        if page.first == 0:
            return [], [], await self._exists(query)
        self._trip()
        docs = await self._c.find(query).sort(spec.mongo_sort).limit(page.first + 1).to_list(
            None
        )
        has_next = len(docs) > page.first
        docs = docs[: page.first]
        return docs, [spec.cursor_for(d) for d in docs], has_next

    async def _exists(self, query: dict[str, Any]) -> bool:
        self._trip()
        return await self._c.find_one(query, projection={"_id": 1}) is not None

    async def _count(self, query: dict[str, Any]) -> int:
        self._trip()
        return int(await self._c.count_documents(query))


class MongoModelVersionStore(_Collection):
    async def insert(self, version: ModelVersion) -> None:
        self._trip()
        try:
            await self._c.insert_one(documents.model_version_to_doc(version))
        except DuplicateKeyError:
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
            model_version_query(where), _MV_SORTS[order], page
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
        self._trip()
        try:
            doc = await self._c.find_one_and_update(
                {"_id": model_id, "status": {"$in": [s.value for s in sources]}},
                {"$set": update},
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            # The only unique key a status change touches is the production slot.
            raise ConflictError(
                f"another version of {name!r} is in production",
                field="status",
            ) from None
        return None if doc is None else documents.model_version_from_doc(doc)

    async def merge_metrics(
        self, model_id: str, metrics: Mapping[str, float], allowed: Collection[ModelStatus]
    ) -> ModelVersion | None:
        self._trip()
        doc = await self._c.find_one_and_update(
            {"_id": model_id, "status": {"$in": [s.value for s in allowed]}},
            # Keys are validated (no '.' or '$'), so each names exactly one metric.
            {"$set": {f"metrics.{k}": v for k, v in metrics.items()}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else documents.model_version_from_doc(doc)

    async def ensure_indexes(self) -> None:
        await self._c.create_indexes(
            [
                IndexModel([("model_name", ASCENDING), ("version", ASCENDING)], unique=True,
                           name="model_name_version_unique"),
                IndexModel([("production_slot", ASCENDING)], unique=True,
                           name="production_slot_unique"),
                IndexModel([("model_name", ASCENDING), ("version_sort_key", DESCENDING)],
                           name="model_name_semver"),
                IndexModel([("created_date", DESCENDING), ("_id", DESCENDING)],
                           name="created_date"),
                IndexModel([("status", ASCENDING), ("created_date", DESCENDING)],
                           name="status_created_date"),
                IndexModel([("version_sort_key", DESCENDING), ("_id", DESCENDING)],
                           name="semver"),
            ]
        )


class MongoTrainingJobStore(_Collection):
    async def insert(self, job: TrainingJob) -> None:
        self._trip()
        try:
            await self._c.insert_one(documents.training_job_to_doc(job))
        except DuplicateKeyError:
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
            training_job_query(where), _JOB_SORTS[order], page
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
        spec = _JOB_SORTS[order]
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
    ) -> TrainingJob | None:
        update: dict[str, Any] = {
            k: (v.value if isinstance(v, TrainingStatus) else v) for k, v in changes.items()
        }
        for key, value in (merge_metrics or {}).items():
            update[f"metrics.{key}"] = value
        self._trip()
        doc = await self._c.find_one_and_update(
            {"_id": job_id, "status": {"$in": [s.value for s in allowed]}},
            {"$set": update},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else documents.training_job_from_doc(doc)

    async def ensure_indexes(self) -> None:
        await self._c.create_indexes(
            [
                IndexModel([("created_date", DESCENDING), ("_id", DESCENDING)],
                           name="created_date"),
                IndexModel([("status", ASCENDING), ("created_date", DESCENDING)],
                           name="status_created_date"),
                IndexModel([("model_id", ASCENDING), ("created_date", DESCENDING)],
                           name="model_id_created_date"),
                IndexModel([("dataset_id", ASCENDING), ("created_date", DESCENDING)],
                           name="dataset_id_created_date"),
            ]
        )


class MongoEventStore(_Collection):
    """Events keyed by a sequence number taken from a counter document (atomic ``$inc``)."""

    def __init__(self, collection: Any, counters: Any, stats: StoreStats) -> None:
        super().__init__(collection, stats)
        self._counters = counters

    async def append(self, event: ChangeEvent) -> ChangeEvent:
        self._trip()
        counter = await self._counters.find_one_and_update(
            {"_id": "events"},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        stored = event.model_copy(update={"seq": int(counter["seq"])})
        self._trip()
        await self._c.insert_one(documents.event_to_doc(stored))
        return stored

    async def for_entity(self, entity_id: str, limit: int) -> list[ChangeEvent]:
        self._trip()
        docs = (
            await self._c.find({"entity_id": entity_id})
            .sort([("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [documents.event_from_doc(d) for d in docs]

    async def since(self, seq: int, limit: int) -> list[ChangeEvent]:
        self._trip()
        docs = (
            await self._c.find({"_id": {"$gt": seq}})
            .sort([("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [documents.event_from_doc(d) for d in docs]

    async def last_seq(self) -> int:
        self._trip()
        counter = await self._counters.find_one({"_id": "events"})
        return 0 if counter is None else int(counter["seq"])

    async def ensure_indexes(self) -> None:
        await self._c.create_indexes(
            [IndexModel([("entity_id", ASCENDING), ("_id", ASCENDING)], name="entity_seq")]
        )


class MongoStorage:
    """The storage contract over one MongoDB database."""

    def __init__(self, database: Any) -> None:
        self._db = database
        self.stats = StoreStats()
        self.model_versions = MongoModelVersionStore(database["model_versions"], self.stats)
        self.training_jobs = MongoTrainingJobStore(database["training_jobs"], self.stats)
        self.events = MongoEventStore(database["events"], database["counters"], self.stats)

    @classmethod
    def connect(cls, uri: str | None, database: str) -> MongoStorage:
        return cls(connect(uri, database))

    async def ensure_indexes(self) -> None:
        await self.model_versions.ensure_indexes()
        await self.training_jobs.ensure_indexes()
        await self.events.ensure_indexes()

    async def ping(self) -> None:
        await self._db.command("ping")

    async def close(self) -> None:
        self._db.client.close()
