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

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphql_api.domain.enums import ModelStatus, TrainingStatus
from graphql_api.domain.errors import ConflictError
from graphql_api.domain.events import ChangeEvent, LogEntry, SealedSeq
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import (
    ModelVersionFilter,
    ModelVersionOrder,
    Page,
    PageRequest,
    TrainingJobFilter,
    TrainingJobOrder,
)
from graphql_api.storage import documents
from graphql_api.storage.base import StoreStats
from graphql_api.storage.filters import model_version_query, training_job_query
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

        # Not tz_aware: the mock would rebuild every scanned document's datetimes on every
        # query (a third of a page's cost at 10k jobs); documents.py re-attaches UTC on read.
        client = AsyncMongoMockClient()
    return client[database]


log = logging.getLogger("mltrain.storage")

#: A claim older than this belongs to a writer that died between claiming and updating.
STALE_CLAIM_AFTER = timedelta(seconds=10)
MAX_UPDATE_ATTEMPTS = 50
#: Sequence numbers an append may find taken before it gives up (see MongoEventStore).
MAX_APPEND_ATTEMPTS = 100


def is_duplicate_key(error: Exception) -> bool:
    """A unique index refused a write. MongoDB says so with code 11000; FerretDB on SQLite
    reports a unique violation by an update as code 1 with SQLite's own words."""
    if isinstance(error, DuplicateKeyError):
        return True
    return isinstance(error, OperationFailure) and (
        error.code == 11000 or "UNIQUE constraint failed" in str(error)
    )


class UpdateGuard:
    """How conditional updates are made atomic.

    MongoDB applies a ``find_one_and_update`` to one document atomically, so its filter on the
    current status is all the guard needed. FerretDB v1 does not: concurrent conditional
    updates from several connections can all match (measured: 1 to 7 winners of 20; see
    docs/ferretdb-probe.md). What it does enforce atomically is a unique index, so on such a
    server a writer first claims the document's revision by inserting ``<collection>:<id>:<rev>``
    into ``update_claims``; only the claim holder updates (filtered on that revision, which it
    bumps), then it drops the claim. A claim left by a writer that died is cleared after
    ``STALE_CLAIM_AFTER``.
    """

    def __init__(self, claims: Any, stats: StoreStats) -> None:
        self.claims = claims
        self.stats = stats
        self.enabled = False


class _Collection:
    """Shared plumbing: round-trip counting, keyset pages and guarded conditional updates."""

    def __init__(self, collection: Any, stats: StoreStats, guard: UpdateGuard) -> None:
        self._c = collection
        self._stats = stats
        self._guard = guard

    def _trip(self) -> None:
        self._stats.round_trips += 1

    async def _page(
        self, query: dict[str, Any], spec: SortSpec, page: PageRequest
    ) -> tuple[list[dict[str, Any]], list[str], bool]:
        if page.after:
            after = spec.after_filter(page.after)
            query = {"$and": [query, after]} if query else after
        if page.first == 0:
            return [], [], await self._exists(query)
        self._trip()
        docs = await self._c.find(query).sort(spec.mongo_sort).limit(page.first + 1).to_list(None)
        has_next = len(docs) > page.first
        docs = docs[: page.first]
        return docs, [spec.cursor_for(d) for d in docs], has_next

    async def _exists(self, query: dict[str, Any]) -> bool:
        self._trip()
        return await self._c.find_one(query, projection={"_id": 1}) is not None

    async def _count(self, query: dict[str, Any]) -> int:
        self._trip()
        return int(await self._c.count_documents(query))

    async def _create_indexes(self, indexes: list[IndexModel]) -> None:
        # One at a time: FerretDB v1's createIndexes fails when several already exist.
        for index in indexes:
            await self._c.create_index(
                index.document["key"].items(),
                **{k: v for k, v in index.document.items() if k != "key"},
            )

    async def _update_if(
        self, record_id: str, allowed: Collection[str], changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``$set`` ``changes`` if the status is in ``allowed``; the document after, or None.

        Raises ``DuplicateKeyError``/``OperationFailure`` from a unique index unchanged (the
        caller knows which rule that is).
        """
        if not self._guard.enabled:
            self._trip()
            doc: dict[str, Any] | None = await self._c.find_one_and_update(
                {"_id": record_id, "status": {"$in": list(allowed)}},
                {"$set": changes, "$inc": {"rev": 1}},
                return_document=ReturnDocument.AFTER,
            )
            return doc
        for attempt in range(MAX_UPDATE_ATTEMPTS):
            self._trip()
            current = await self._c.find_one({"_id": record_id})
            if current is None or current["status"] not in allowed:
                return None
            rev = int(current.get("rev", 0))
            claim = f"{self._c.name}:{record_id}:{rev}"
            if not await self._claim(claim):
                await asyncio.sleep(min(0.001 * 2**attempt, 0.05))
                continue
            try:
                self._trip()
                doc = await self._c.find_one_and_update(
                    {"_id": record_id, "rev": rev},
                    {"$set": {**changes, "rev": rev + 1}},
                    return_document=ReturnDocument.AFTER,
                )
            finally:
                self._trip()
                await self._guard.claims.delete_one({"_id": claim})
            if doc is not None:
                return doc
        raise ConflictError(
            f"{record_id!r} is being changed by too many writers at once; retry", field="id"
        )

    async def _claim(self, claim: str) -> bool:
        now = datetime.now(UTC)
        try:
            self._trip()
            await self._guard.claims.insert_one({"_id": claim, "at": now})
            return True
        except DuplicateKeyError:
            pass
        self._trip()
        held = await self._guard.claims.find_one({"_id": claim})
        if held is not None and held["at"].replace(tzinfo=UTC) < now - STALE_CLAIM_AFTER:
            log.warning("clearing stale update claim %s from %s", claim, held["at"])
            self._trip()
            await self._guard.claims.delete_one({"_id": claim, "at": held["at"]})
        return False


class MongoModelVersionStore(_Collection):
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


class MongoTrainingJobStore(_Collection):
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
            ]
        )


class MongoEventStore(_Collection):
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
                    return documents.event_from_doc(landed)
        raise RuntimeError(f"no free sequence number after {MAX_APPEND_ATTEMPTS} attempts")

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
            await self._c.find({"_id": {"$gt": seq}, "sealed": {"$exists": False}})
            .sort([("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [documents.event_from_doc(d) for d in docs]

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

    async def seal(self, seq: int) -> ChangeEvent | None:
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
        return entry if isinstance(entry, ChangeEvent) else None

    async def head(self) -> int:
        self._trip()
        docs = (
            await self._c.find({}, projection={"_id": 1})
            .sort([("_id", DESCENDING)])
            .limit(1)
            .to_list(None)
        )
        return int(docs[0]["_id"]) if docs else 0

    async def last_seq(self) -> int:
        self._trip()
        counter = await self._counters.find_one({"_id": "events"})
        return 0 if counter is None else int(counter["seq"])

    async def ensure_indexes(self) -> None:
        await self._create_indexes(
            [
                IndexModel([("entity_id", ASCENDING), ("_id", ASCENDING)], name="entity_seq"),
                IndexModel(
                    [("event_id", ASCENDING)], unique=True, sparse=True, name="event_id_unique"
                ),
            ]
        )


def _log_entry(doc: dict[str, Any]) -> LogEntry:
    return SealedSeq(int(doc["_id"])) if doc.get("sealed") else documents.event_from_doc(doc)


class MongoStorage:
    """The storage contract over one MongoDB database."""

    def __init__(self, database: Any, guarded_updates: bool | None = None) -> None:
        self._db = database
        self.stats = StoreStats()
        self.guard = UpdateGuard(database["update_claims"], self.stats)
        self._guarded_updates = guarded_updates
        self.model_versions = MongoModelVersionStore(
            database["model_versions"], self.stats, self.guard
        )
        self.training_jobs = MongoTrainingJobStore(
            database["training_jobs"], self.stats, self.guard
        )
        self.events = MongoEventStore(
            database["events"], database["counters"], self.stats, self.guard
        )

    @classmethod
    def connect(
        cls, uri: str | None, database: str, guarded_updates: bool | None = None
    ) -> MongoStorage:
        return cls(connect(uri, database), guarded_updates)

    async def ensure_indexes(self) -> None:
        """Start-up: learn what the server guarantees, then create the indexes (idempotent)."""
        if self._guarded_updates is None:
            info = await self._db.command("buildInfo")
            # FerretDB names itself here; its conditional updates need the claim guard.
            self.guard.enabled = "ferretdbVersion" in info
        else:
            self.guard.enabled = self._guarded_updates
        await self.model_versions.ensure_indexes()
        await self.training_jobs.ensure_indexes()
        await self.events.ensure_indexes()

    async def ping(self) -> None:
        await self._db.command("ping")

    async def close(self) -> None:
        self._db.client.close()
