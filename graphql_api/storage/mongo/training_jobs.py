"""Training jobs in MongoDB."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from graphql_api.domain.enums import JobHealth, TrainingStatus
from graphql_api.domain.errors import ConflictError
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.queries import Page, TrainingJobFilter, TrainingJobOrder
from graphql_api.domain.updates import Change
from graphql_api.domain.values import DEFAULT_QUEUE
from graphql_api.storage.base import PendingChange, RecordBusy, StoreStats
from graphql_api.storage.mongo.client import aggregate
from graphql_api.storage.mongo.collection import ORDERED_INDEX, UpdateGuard
from graphql_api.storage.mongo.documents import TRAINING_JOBS
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.filters import training_job_query
from graphql_api.storage.mongo.outbox import MongoOutboxStore, unless_pending
from graphql_api.storage.mongo.sorts import TRAINING_JOB_SORTS

#: The order jobs are claimed in (the claim index serves it).
CLAIM_ORDER = [("created_date", ASCENDING), ("_id", ASCENDING)]
#: Candidates one claim reads at a time: about the number of workers racing on one queue.
CLAIM_BATCH = 16
#: Queues (with their model filters) whose unclaimed candidates a process keeps, at most.
MAX_CLAIM_QUEUES = 256
#: Jobs a process remembers having claimed (a read right after a claim may still see them).
RECENT_CLAIMS = 1024
#: What ``_kept_candidate`` answers when every job it read is being claimed by this process.
NONE_KEPT = object()


@bounded_methods
class MongoTrainingJobStore(MongoOutboxStore[TrainingJob, TrainingJobFilter, TrainingJobOrder]):
    # One model version's jobs, one dataset's, one status's: the order of their usual shares.
    WINDOW_INDEXES = {
        "model_id": "model_id_created_date",
        "dataset_id": "dataset_id_created_date",
        "status": "status_created_date",
    }

    def __init__(self, collection: Any, stats: StoreStats, guard: UpdateGuard) -> None:
        super().__init__(
            collection,
            stats,
            guard,
            mapping=TRAINING_JOBS,
            query=training_job_query,
            sorts=TRAINING_JOB_SORTS,
            inserting="creating the job",
            changing="changing the job",
        )
        # A points call lists its keys in the job's series lease until it commits them into
        # ``metrics``: a metrics merge meanwhile counts them (metric_series.py).
        self._pending_merge = ("metric_lease", "keys")
        #: (queue, model filter) -> ids of PENDING jobs a claim read and did not take, oldest
        #: first: the next claims of this process try them before reading again (``claim``).
        self._claim_candidates: dict[tuple[str, tuple[str, ...] | None], list[Any]] = {}
        #: (queue, model filter) -> claims left before a batch is kept again (after a kept
        #: candidate was found taken).
        self._claim_contended: dict[tuple[str, tuple[str, ...] | None], int] = {}
        #: Kept candidates handed to a claim whose update has not finished yet.
        self._claims_in_flight: set[Any] = set()
        #: The jobs this process claimed last (a dict as an ordered set), not to be kept.
        self._claimed_recently: dict[Any, None] = {}
        #: (queue, model filter) -> held while a claim reads the queue's next batch.
        self._claim_reads: dict[tuple[str, tuple[str, ...] | None], asyncio.Lock] = {}

    async def insert(self, job: TrainingJob, pending: PendingChange | None = None) -> None:
        await self._insert_pending(job, pending)

    async def _duplicate(self, record: TrainingJob) -> ConflictError:
        return ConflictError(
            f"a training job with jobId {record.job_id!r} already exists", field="jobId"
        )

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
                [TRAINING_JOBS.from_doc(d) for d in docs[:first]],
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
        async for row in await aggregate(self._c, pipeline):
            counts[row["_id"]] = int(row["n"])
        return counts

    async def update(
        self,
        job_id: str,
        sources: Collection[TrainingStatus],
        changes: Sequence[Change],
        *,
        lease_token_hash: str | None = None,
        unclaimed_only: bool = False,
        lease_lapsed_before: datetime | None = None,
        health: JobHealth | None = None,
        cancel_requested: bool | None = None,
        pending: PendingChange | None = None,
        logged_event_id: str | None = None,
    ) -> TrainingJob | None:
        pending_where, also_set = unless_pending(pending, logged_event_id)
        where: dict[str, Any] = {}
        if cancel_requested is not None:
            where["cancel_requested_at"] = {"$ne": None} if cancel_requested else None
        if lease_lapsed_before is not None:
            where["lease_expires_at"] = {"$lt": lease_lapsed_before}
        if health is not None:
            # A job stored before health existed is HEALTHY.
            where["health"] = (
                {"$in": [health.value, None]} if health is JobHealth.HEALTHY else health.value
            )
        if lease_token_hash is not None:
            where["lease_token_hash"] = lease_token_hash
        if unclaimed_only:
            where["worker_id"] = None  # also matches jobs stored before workers existed
        return await self._update_or_busy(
            job_id, sources, changes, where=where, pending_where=pending_where, also_set=also_set
        )

    async def lapsed(self, before: datetime, health: JobHealth, limit: int) -> list[TrainingJob]:
        self._trip()
        docs = (
            await self._c.find(
                {
                    "status": TrainingStatus.RUNNING.value,
                    "lease_expires_at": {"$lt": before},
                    # Only jobs a worker holds: clients from before leases start jobs without
                    # a worker and never heartbeat.
                    "worker_id": {"$ne": None},
                    "health": {"$in": [health.value, None]}
                    if health is JobHealth.HEALTHY
                    else health.value,
                }
            )
            .sort([("lease_expires_at", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [TRAINING_JOBS.from_doc(d) for d in docs]

    async def retries_due(self, now: datetime, limit: int) -> list[TrainingJob]:
        self._trip()
        docs = (
            await self._c.find(
                {"status": TrainingStatus.FAILED.value, "retry_due_at": {"$lte": now}}
            )
            .sort([("retry_due_at", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [TRAINING_JOBS.from_doc(d) for d in docs]

    async def attempts(self, root: str, limit: int) -> list[TrainingJob]:
        self._trip()
        docs = (
            await self._c.find({"$or": [{"_id": root}, {"retry_root": root}]})
            .sort([("attempt", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [TRAINING_JOBS.from_doc(d) for d in docs]

    async def cancels_due(self, now: datetime, limit: int) -> list[TrainingJob]:
        self._trip()
        docs = (
            await self._c.find(
                {"status": TrainingStatus.RUNNING.value, "cancel_deadline_at": {"$lt": now}}
            )
            .sort([("cancel_deadline_at", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [TRAINING_JOBS.from_doc(d) for d in docs]

    async def running_with_max_runtime(self, limit: int) -> list[TrainingJob]:
        self._trip()
        docs = (
            await self._c.find(
                {"status": TrainingStatus.RUNNING.value, "max_runtime_seconds": {"$ne": None}}
            )
            .sort([("started_date", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [TRAINING_JOBS.from_doc(d) for d in docs]

    async def claim(
        self,
        queue: str,
        changes: Sequence[Change],
        *,
        max_attempts: int,
        model_ids: Collection[str] | None = None,
        pending: PendingChange | None = None,
        logged: Mapping[str, str] | None = None,
    ) -> TrainingJob | None:
        # Candidates are read a batch at a time (the CLAIM_BATCH oldest) and kept: this
        # process's claims of the queue take them one by one, oldest first, and read again
        # only when none is left; claims that find none wait for the one read in flight
        # instead of reading too. Claims in one process then never race each other, and a
        # claim is one round trip, not two, for all but one in CLAIM_BATCH (bench.claims,
        # 8 workers). A job created since is newer than all of them (the order holds).
        # A kept job another process took (or a job busy with its creation's event) fails
        # its claim: the batch is dropped and, for the queue's next CLAIM_BATCH claims, each
        # claim reads for itself as below (two processes on one queue would otherwise keep
        # losing each other's jobs).
        #
        # Reading for itself, a claim tries the oldest first; a racer that lost it tries
        # another of its batch instead of reading again, picked at random: racers that read
        # the same batch and lost the same job then scatter over the rest instead of all
        # losing the next one too (8 workers on DocumentDB, bench.claims: 9.2 round trips
        # per claim trying them in order, 5.2 scattered).
        query: dict[str, Any] = {"queue": queue, "status": TrainingStatus.PENDING.value}
        key = (queue, None if model_ids is None else tuple(sorted(model_ids)))
        if model_ids is not None:
            query["model_id"] = {"$in": sorted(model_ids)}
        logged = logged or {}
        attempts = 0
        lost: set[Any] = set()
        if not self._claim_contended.get(key):
            candidate = await self._kept_candidate(key, query)
            if candidate is None:
                return None
            if candidate is not NONE_KEPT:
                try:
                    job = await self._claim_one(candidate, queue, changes, pending, logged)
                finally:
                    self._claims_in_flight.discard(candidate)
                if job is not None:
                    self._claimed(candidate)
                    return job
                self._claim_candidates.pop(key, None)
                self._claim_contended[key] = CLAIM_BATCH + 1
                lost.add(candidate)
                attempts += 1
        if contended := self._claim_contended.pop(key, 0):
            if contended > 1:
                self._claim_contended[key] = contended - 1
            while len(self._claim_contended) > MAX_CLAIM_QUEUES:
                del self._claim_contended[next(iter(self._claim_contended))]
        while attempts < max_attempts:
            self._trip()
            candidates = [
                doc["_id"]
                for doc in await self._c.find(query, projection={"_id": 1})
                .sort(CLAIM_ORDER)
                .limit(CLAIM_BATCH)
                .to_list(None)
            ]
            if not candidates:
                return None
            if candidates[0] in lost:
                # Still PENDING after this claim lost it: not taken, but blocked by its own
                # change's event (a job just created): the caller relays it and claims again.
                raise RecordBusy(candidates[0])
            rest = candidates[1:]
            random.shuffle(rest)
            for candidate in [candidates[0], *rest]:
                job = await self._claim_one(candidate, queue, changes, pending, logged)
                if job is not None:
                    self._claimed(candidate)
                    return job
                lost.add(candidate)
                attempts += 1
                if attempts >= max_attempts:
                    break
        raise ConflictError(
            f"claiming a job of queue {queue!r}: lost the race for {attempts} jobs in a row to "
            "other workers; retry"
        )

    async def _claim_one(
        self,
        job_id: Any,
        queue: str,
        changes: Sequence[Change],
        pending: PendingChange | None,
        logged: Mapping[str, str],
    ) -> TrainingJob | None:
        where, also_set = unless_pending(pending, logged.get(job_id))
        return await self._update(
            job_id,
            {TrainingStatus.PENDING},
            changes,
            where={"queue": queue, **where},
            also_set=also_set,
        )

    def _claimed(self, job_id: Any) -> None:
        self._claimed_recently[job_id] = None
        while len(self._claimed_recently) > RECENT_CLAIMS:
            del self._claimed_recently[next(iter(self._claimed_recently))]

    async def _kept_candidate(
        self, key: tuple[str, tuple[str, ...] | None], query: dict[str, Any]
    ) -> Any:
        """The oldest kept candidate of the queue (read first if none is kept); None when
        the queue has no PENDING job."""
        lock = self._claim_reads.get(key)
        if lock is None:
            lock = self._claim_reads[key] = asyncio.Lock()
            while len(self._claim_reads) > MAX_CLAIM_QUEUES:
                del self._claim_reads[next(iter(self._claim_reads))]
        async with lock:
            kept = self._claim_candidates.pop(key, None)
            if not kept:
                self._trip()
                docs = (
                    await self._c.find(query, projection={"_id": 1})
                    .sort(CLAIM_ORDER)
                    .limit(CLAIM_BATCH + len(self._claims_in_flight))
                    .to_list(None)
                )
                if not docs:
                    return None
                # Not the jobs whose claims are in flight or just landed: the read may still
                # see them PENDING (DocumentDB did, right after the claim's findAndModify had
                # answered), and another claim of this process would then lose them.
                skip = self._claims_in_flight
                kept = [
                    doc["_id"]
                    for doc in docs
                    if doc["_id"] not in skip and doc["_id"] not in self._claimed_recently
                ]
                if not kept:
                    # All of them in flight: claim for itself (the read below, its scatter).
                    return NONE_KEPT
            candidate = kept.pop(0)
            self._claims_in_flight.add(candidate)
            if kept:
                self._claim_candidates[key] = kept
                while len(self._claim_candidates) > MAX_CLAIM_QUEUES:
                    # The queue claimed from longest ago (insertion order: pop, re-add).
                    del self._claim_candidates[next(iter(self._claim_candidates))]
            return candidate

    async def ensure_indexes(self) -> None:
        await self._ensure_outbox_index()
        ordered = {ORDERED_INDEX: True} if self.ordered_indexes else {}
        await self._create_indexes(
            [
                IndexModel(
                    [("created_date", DESCENDING), ("_id", DESCENDING)], name="created_date"
                ),
                # A filter and a window of the sort key (windows.py) in one ordered range on
                # DocumentDB (server.py): unordered, a FAILED window at 100,000 jobs read all
                # 12,000 FAILED entries (bench/README.md, "Sorted pages").
                IndexModel(
                    [("status", ASCENDING), ("created_date", DESCENDING)],
                    name="status_created_date",
                    **ordered,
                ),
                IndexModel(
                    [("model_id", ASCENDING), ("created_date", DESCENDING)],
                    name="model_id_created_date",
                    **ordered,
                ),
                IndexModel(
                    [("dataset_id", ASCENDING), ("created_date", DESCENDING)],
                    name="dataset_id_created_date",
                    **ordered,
                ),
                # The started/completed date filters: without these a range on them read the
                # whole collection (found by the explain test, query_shapes.py).
                IndexModel([("started_date", DESCENDING)], name="started_date"),
                IndexModel([("completed_date", DESCENDING)], name="completed_date"),
                # claimTrainingJob: the oldest PENDING job of a queue.
                IndexModel(
                    [
                        ("queue", ASCENDING),
                        ("status", ASCENDING),
                        ("created_date", ASCENDING),
                        ("_id", ASCENDING),
                    ],
                    name="queue_status_created_date",
                ),
                # The sweep's due retries, and a job's chain of attempts.
                IndexModel([("retry_due_at", ASCENDING)], name="retry_due_at"),
                IndexModel([("retry_root", ASCENDING)], name="retry_root"),
                # The liveness sweep: RUNNING jobs whose lease lapsed.
                IndexModel(
                    [("status", ASCENDING), ("lease_expires_at", ASCENDING)],
                    name="status_lease_expires_at",
                ),
            ]
        )
        # Jobs stored before queues existed are in the default queue: give them the field, so
        # the claim query (an equality on ``queue``) finds them through the index.
        self._trip()
        await self._c.update_many({"queue": {"$exists": False}}, {"$set": {"queue": DEFAULT_QUEUE}})
