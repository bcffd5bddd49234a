"""Metric series in MongoDB: bucketed points, summaries written with them, a per-job lease.

**Buckets.** Collection ``metric_buckets``: one document per job x key x range of
``BUCKET_STEPS`` steps (bucket ``b = step >> 10``), ``_id`` ``<job>\\x1f<key>\\x1f<b>`` (keys
and job ids never hold control characters, so the id is unambiguous). It holds its points as
parallel arrays sorted by step (``s`` steps, ``v`` values, ``t`` timestamps in ms, ``q`` the
write sequence that stored each point) and their summary: ``n`` (count), ``first``,
``last``, ``min``, ``max`` (each ``[step, value, timestamp]``), and ``w``, the write sequence
of its last write. Points and summary always change in one document write (a bucket written
whole, or points appended by an update pipeline that moves the summary in the same update),
so on every server, with or without transactions, a summary describes exactly the points
beside it.

**Summary copies.** Collection ``metric_summaries`` holds a copy of each bucket's summary
(same ``_id``, no points: about 200 bytes instead of up to 40 KB), written right after the
buckets. Range reads fetch summaries from there: on DocumentDB a projection still reads every
whole document it returns, and reading the summaries of a 1,000,000-point series from the
buckets themselves read 40 MB (measured: the compare query of 20 x 100,000 points took more
than 2.5 s that way). A copy is written only over an older one (``w`` lower), so a writer
whose lease expired under it cannot put an older summary back.

**One writer per job at a time.** A call that writes points first takes the job's series
lease (one conditional update of the job document, an update pipeline: ``metric_lease {seq,
until}``, the next write sequence, refused while another live lease is held), then checks
the limits against what is stored and writes the buckets in one unordered bulk write, then
their summary copies in one more, and commits on the job document. A key's points past every
step stored for it (``metric_steps``, read with the lease: what a training script sends) are
written without reading their buckets: a bucket past the key's last one is inserted, and an
existing one gets them appended by an update pipeline (arrays extended, count added, last
replaced, min and max replaced only by a strictly lower or higher value), matching only while
the bucket's last step is below them and its ``w`` below this write's, so an append can never
disorder, duplicate or re-apply points (a miss becomes an insert of an existing ``_id``: the
call is refused, its lease left stale); its copy is moved by the same summary pipeline. Other
points (a retry, a late step) are merged into their buckets as read (one more round trip), each
replacement conditional on the bucket's ``w`` as read. The commit on the job
document sets: the latest value and step per key (``metrics``, ``metric_steps``), the number of
points stored (``metric_points``), ``metric_seq`` (the last completed write), the lease
cleared, ``rev`` bumped. Concurrent callers for one job wait for the lease (bounded: then a
ConflictError to retry); different jobs never wait for each other.

**A crash mid-call** (or a lost connection) after the bucket write leaves buckets written
whose points the job's counters and ``metrics`` do not include yet, and the lease in place; if
it came before the summary copies were written, those buckets' copies still describe them as
they were before the call (a true summary of an earlier state of the bucket, not a mix). No
bucket's own summary is ever wrong (each bucket is written whole). The lease expires after
``LEASE_SECONDS``; the next call for the job then sees a lease it did not take and first
rewrites the summary copies of every bucket written after the last completed write (from the
buckets, found through ``job_write_seq``), then recounts the job's series from the buckets
(one aggregation: points per key and each key's last point), so copies, counters and latest
values heal with the next write, and a retry of the crashed call replaces its points instead
of counting them twice. Until then a read shows the crashed call's points where it opens
buckets and the earlier summaries where it does not, with the job's ``metrics`` and live
cursor one write behind. A call refused by a limit releases the lease without writing anything
(a stale lease stays marked, so the next call heals: the crashed call's keys and points count
toward the limits), and so does a call whose lease ran out before it wrote (a stalled process:
another writer may hold the job by then). One window is left: a copy moved by an append assumes
the copy was current. A writer that stalls past its lease just before writing, whose append
then lands after the next writer has committed, leaves that bucket's copy short of its points
if a later call's append moves the copy before its own copy write does (the bucket itself stays
exact, and so do reads that open it); the old read-merge path rewrote copies whole instead.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from pymongo import ASCENDING, IndexModel, InsertOne, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from graphql_api.domain.downsampling import Sample, Summary
from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.errors import ConflictError
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.series import BucketSummary, KeyPoints
from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo import documents
from graphql_api.storage.mongo.client import aggregate
from graphql_api.storage.mongo.collection import MongoCollection, UpdateGuard
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.series import (
    SeriesLimitExceeded,
    SeriesPosition,
    WrittenPoint,
)

#: Steps per bucket, as a shift: bucket ``b`` holds steps ``b << 10`` to ``(b << 10) + 1023``.
#: A dense series (a point every step) fills 1,024 points per bucket (~40 KB of BSON), so a
#: 1,000,000-point series is about 1,000 buckets: read as 1,000 summaries.
BUCKET_SHIFT = 10
BUCKET_STEPS = 1 << BUCKET_SHIFT
#: A lease older than this belongs to a writer that died (or lost its connection) mid-call.
LEASE_SECONDS = 10.0
#: Pauses of a writer waiting for another's lease: doubling from 1 ms to 50 ms.
FIRST_WAIT, LONGEST_WAIT = 0.001, 0.05
#: How long a writer waits for the lease when no operation bound is set (the mock).
UNBOUNDED_WAIT = 5.0
#: What a bucket's summary copy holds (``metric_summaries``).
SUMMARY_FIELDS = ("job_id", "key", "b", "w", "n", "first", "last", "min", "max")


#: What ``append`` reads of the job document when it takes the lease.
LEASE_READS = ("status", "metrics", "metric_steps", "metric_points", "metric_seq", "metric_lease")
_STORED_SEQ = {"$ifNull": ["$metric_seq", 0]}
_LEASED_SEQ = {"$ifNull": ["$metric_lease.seq", 0]}


def _summary_copy(bucket: Mapping[str, Any]) -> dict[str, Any]:
    return {"_id": bucket["_id"], **{field: bucket[field] for field in SUMMARY_FIELDS}}


def bucket_id(job_id: str, key: str, bucket: int) -> str:
    return f"{job_id}\x1f{key}\x1f{bucket}"


def _sample(stored: Sequence[Any]) -> Sample:
    return (int(stored[0]), float(stored[1]), int(stored[2]))


def _summary(doc: Mapping[str, Any]) -> Summary:
    return Summary(
        int(doc["n"]),
        _sample(doc["first"]),
        _sample(doc["last"]),
        _sample(doc["min"]),
        _sample(doc["max"]),
    )


def is_duplicate_key_code(write_error: Mapping[str, Any]) -> bool:
    """A bulk write's error that a unique index caused (MongoDB's code, or DocumentDB's
    PostgreSQL wording: see ``collection.is_duplicate_key``)."""
    return write_error.get("code") == 11000 or "exclusion constraint" in str(
        write_error.get("errmsg", "")
    )


def _is_mock(collection: Any) -> bool:
    return any(k.__module__.startswith("mongomock") for k in type(collection).__mro__)


class _Busy(Exception):
    """Another writer holds the job's series lease."""


def _now_ms() -> int:
    return int(time.time() * 1000)


@bounded_methods
class MongoMetricSeriesStore(MongoCollection):
    """``MetricSeriesStore`` over ``metric_buckets`` and the jobs' documents."""

    def __init__(
        self, buckets: Any, summaries: Any, jobs: Any, stats: StoreStats, guard: UpdateGuard
    ) -> None:
        super().__init__(buckets, stats, guard)
        # The summary copies (see the module's doc), and the job documents, through the
        # shared conditional-update plumbing (and its guard).
        self._summaries = MongoCollection(summaries, stats, guard)
        self._jobs = MongoCollection(jobs, stats, guard)

    async def ensure_indexes(self) -> None:
        await self._create_indexes(
            [
                # Range reads of series: job, key, bucket number.
                IndexModel(
                    [("job_id", ASCENDING), ("key", ASCENDING), ("b", ASCENDING)],
                    name="job_key_bucket",
                ),
                # The live feed: buckets of a job written after a sequence number.
                IndexModel([("job_id", ASCENDING), ("w", ASCENDING)], name="job_write_seq"),
            ]
        )
        await self._summaries._create_indexes(
            [
                IndexModel(
                    [("job_id", ASCENDING), ("key", ASCENDING), ("b", ASCENDING)],
                    name="summary_job_key_bucket",
                )
            ]
        )

    # Writes ----------------------------------------------------------------------------

    async def append(
        self,
        job_id: str,
        columns: Sequence[KeyPoints],
        allowed: Collection[TrainingStatus],
        max_keys: int,
        max_points: int,
        *,
        lease_token_hash: str | None = None,
        unclaimed_only: bool = False,
    ) -> TrainingJob | None:
        fence: dict[str, Any] = {}
        if lease_token_hash is not None:
            fence["lease_token_hash"] = lease_token_hash
        if unclaimed_only:
            fence["worker_id"] = None  # also matches jobs stored before workers existed
        job = await self._acquire(
            job_id, [s.value for s in allowed], fence, keys=sorted({c.key for c in columns})
        )
        if job is None:
            return None
        lease = job["metric_lease"]
        seq = int(lease["seq"])
        written = False
        # A lease left by a writer that died: this call heals the job before its own points.
        stale = bool(lease.get("stale"))
        try:
            stored_points = int(job.get("metric_points", 0))
            metric_steps: dict[str, int] = dict(job.get("metric_steps") or {})
            healed: dict[str, Sample] = {}
            if stale:
                await self._resync_summaries(job_id, int(job.get("metric_seq", 0)))
                stored_points, healed = await self._recount(job_id)
                for key, last in healed.items():
                    if last[0] >= metric_steps.get(key, -1):
                        metric_steps[key] = last[0]
            # Points past every stored step of their key (what a training script sends) are
            # appended where they are, without reading their bucket (see ``_appended``); the
            # rest (a retry, a late point) are merged into their bucket as read.
            # FerretDB v1 (the guarded server) has no update pipelines: it merges everything.
            appendable = not stale and not self._guard.enabled
            appends: list[_BucketPart] = []
            merges: dict[str, _BucketPart] = {}
            for part in _bucket_parts(columns):
                if appendable and part.steps[0] > metric_steps.get(part.key, -1):
                    appends.append(part)
                else:
                    merges[bucket_id(job_id, part.key, part.b)] = part
            current: dict[str, dict[str, Any]] = {}
            if merges:
                self._trip()
                current = {d["_id"]: d async for d in self._c.find({"_id": {"$in": list(merges)}})}
            operations: list[InsertOne[Any] | ReplaceOne[Any] | UpdateOne] = []
            copies: list[dict[str, Any]] = []
            copy_updates: list[UpdateOne] = []
            added = 0
            for bucket, part in merges.items():
                doc, new = _merged(current.get(bucket), job_id, part, seq)
                added += new
                if bucket in current:
                    operations.append(ReplaceOne({"_id": bucket, "w": current[bucket]["w"]}, doc))
                else:
                    operations.append(InsertOne(doc))
                copies.append(_summary_copy(doc))
            for part in appends:
                if part.b > metric_steps.get(part.key, -1) >> BUCKET_SHIFT:
                    # Past the key's last bucket: no such bucket yet, a plain insert (an
                    # update pipeline's upsert costs DocumentDB several times more).
                    doc = _new_bucket(job_id, part, seq)
                    operations.append(InsertOne(doc))
                    copies.append(_summary_copy(doc))
                else:
                    bucket_op, copy_op = _appended(job_id, part, seq)
                    operations.append(bucket_op)
                    copy_updates.append(copy_op)
                added += len(part.steps)
            # Keys of a call that died after writing its buckets (``healed``) are stored too:
            # this call commits them into ``metrics``, so they count toward the limit.
            stored_keys = set((job.get("metrics") or {}).keys()) | healed.keys()
            keys_after = len(stored_keys | {c.key for c in columns})
            if keys_after > max_keys:
                raise SeriesLimitExceeded("keys", len(stored_keys), keys_after, max_keys)
            if stored_points + added > max_points:
                raise SeriesLimitExceeded(
                    "points", stored_points, stored_points + added, max_points
                )
            if _now_ms() >= int(lease["until"]):
                # The lease ran out before writing anything (a stalled process): another
                # writer may hold the job now, and appends trust what the lease read; write
                # nothing rather than race it.
                raise ConflictError(
                    f"the points for TrainingJob {job_id!r} took longer than "
                    f"{LEASE_SECONDS:g} s to prepare; nothing was written: send them again",
                    field="points",
                )
            written = True
            await self._write_buckets(operations)
            await self._write_summaries(copies, copy_updates)
            # Each key's columns are in step order: its last point is its latest.
            latest = {c.key: (c.steps[-1], c.values[-1]) for c in columns}
            changes: dict[str, Any] = {}
            for key, last in healed.items():
                if last[0] >= metric_steps.get(key, -1) and key not in latest:
                    changes[f"metrics.{key}"] = last[1]
            for key, (step, value) in latest.items():
                if step >= metric_steps.get(key, -1):
                    changes[f"metrics.{key}"] = value
                    metric_steps[key] = step
            stored_steps = job.get("metric_steps") or {}
            for key, step in metric_steps.items():
                if stored_steps.get(key) != step:  # only what moved (a job has up to 1,000)
                    changes[f"metric_steps.{key}"] = step
            changes["metric_points"] = stored_points + added
            changes["metric_seq"] = seq
            self._trip()
            committed = await self._jobs._c.find_one_and_update(
                {"_id": job_id, "metric_lease.seq": seq},
                {"$set": changes, "$unset": {"metric_lease": ""}, "$inc": {"rev": 1}},
                return_document=ReturnDocument.AFTER,
            )
        except BaseException:
            # Refused before writing: nothing to heal, unless the lease was stale (the healing
            # this call read is committed by none). Failed after writing: whoever comes next
            # recounts (the lease is left expired, marked stale).
            await asyncio.shield(self._give_up(job_id, seq, heal=written or stale))
            raise
        if committed is None:
            raise ConflictError(
                f"the points for TrainingJob {job_id!r} took longer than {LEASE_SECONDS:g} s "
                "to store and another writer took over; they may be stored: send them again "
                "(a point for a stored step replaces it)",
                field="points",
            )
        return documents.TRAINING_JOBS.from_doc(committed)

    async def _acquire(
        self,
        job_id: str,
        allowed: list[str],
        fence: dict[str, Any] | None = None,
        *,
        keys: Sequence[str] = (),
    ) -> dict[str, Any] | None:
        """The job's document with this call's lease in it, or None (no such job, not in an
        allowed status, or not matching ``fence``: a worker's lease). Waits while another
        writer holds a live lease. The lease lists the call's ``keys`` (with those of a
        dead writer's lease it takes over, whose points this call heals into ``metrics``): a
        ``metrics`` merge while it is held counts them as stored (``_merge_within``), so the
        two together keep the job within its key limit."""
        self._jobs.timeout = self.timeout
        wait_for = UNBOUNDED_WAIT if self.timeout is None else self.timeout / 2
        give_up_at = time.monotonic() + wait_for
        pause = FIRST_WAIT

        def lease_for(current: dict[str, Any]) -> dict[str, Any]:
            held = current.get("metric_lease")
            if held is not None and int(held["until"]) > _now_ms():
                raise _Busy()
            last = max(int(current.get("metric_seq", 0)), int(held["seq"]) if held else 0)
            until = _now_ms() + int(LEASE_SECONDS * 1000)
            listed = sorted(set(keys).union(held.get("keys") or () if held else ()))
            lease = {"seq": last + 1, "until": until, "stale": held is not None, "keys": listed}
            return {"metric_lease": lease}

        reads = ["metric_lease", "metric_seq"]
        while True:
            try:
                if self._jobs._guard.enabled:
                    # FerretDB v1: a conditional update is not atomic there, so the lease goes
                    # through the guarded read-check-write (two round trips and a claim).
                    return await self._jobs._update_checked(
                        job_id, allowed, lease_for, reads, where=fence
                    )
                return await self._take_lease(job_id, allowed, keys, fence or {})
            except _Busy:
                if time.monotonic() + pause > give_up_at:
                    raise ConflictError(
                        f"TrainingJob {job_id!r} is receiving points from another call that "
                        "has not finished; retry",
                        field="jobId",
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, LONGEST_WAIT)

    async def _take_lease(
        self, job_id: str, allowed: list[str], keys: Sequence[str], fence: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``lease_for`` in one conditional update (an update pipeline computes the next write
        sequence from the stored one), returning only what ``append`` reads of the job. A miss
        costs one more read, to tell a busy job from one that cannot take points (not in an
        allowed status, or not matching ``fence``, the worker's lease: equalities)."""
        now = _now_ms()
        self._trip()
        doc: dict[str, Any] | None = await self._jobs._c.find_one_and_update(
            {
                "_id": job_id,
                "status": {"$in": allowed},
                **fence,
                "$or": [
                    {"metric_lease": {"$exists": False}},
                    {"metric_lease.until": {"$lte": now}},
                ],
            },
            [
                {
                    "$set": {
                        "metric_lease": {
                            "seq": {"$add": [{"$max": [_STORED_SEQ, _LEASED_SEQ]}, 1]},
                            "until": now + int(LEASE_SECONDS * 1000),
                            # A lease still there was left by a writer that died or failed.
                            "stale": {"$gt": [_LEASED_SEQ, 0]},
                            "keys": {
                                "$setUnion": [
                                    {"$ifNull": ["$metric_lease.keys", []]},
                                    {"$literal": list(keys)},
                                ]
                            },
                        },
                        "rev": {"$add": [{"$ifNull": ["$rev", 0]}, 1]},
                    }
                }
            ],
            projection=LEASE_READS,
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return doc
        self._trip()
        current = await self._jobs._c.find_one(
            {"_id": job_id}, {"status": 1, **dict.fromkeys(fence, 1)}
        )
        if current is None or current["status"] not in allowed:
            return None
        if any(current.get(field) != wanted for field, wanted in fence.items()):
            return None  # fenced off: another worker's job, or a claimed one
        raise _Busy()

    async def _give_up(self, job_id: str, seq: int, *, heal: bool) -> None:
        """Release the lease of a call that ends without committing: plainly when it wrote
        nothing, or left expired and stale when it may have written buckets."""
        update: dict[str, Any] = (
            {"$set": {"metric_lease.until": 0, "metric_lease.stale": True}}
            if heal
            else {"$unset": {"metric_lease": ""}}
        )
        try:
            self._trip()
            await self._jobs._c.update_one({"_id": job_id, "metric_lease.seq": seq}, update)
        except Exception:
            pass

    async def _write_buckets(
        self, operations: Sequence[InsertOne[Any] | ReplaceOne[Any] | UpdateOne]
    ) -> None:
        """One unordered bulk write. Every operation must land: a replacement whose bucket
        changed since it was read matches nothing, and an append whose bucket is no longer
        below its steps (or is newer) fails its upsert on the duplicate ``_id``."""
        self._trip()
        if _is_mock(self._c):
            # mongomock's bulk_write does not take the operations of the PyMongo it runs
            # with (ReplaceOne passes ``sort``): the in-memory mock applies them one by one,
            # in process (still one "round trip": nothing crosses a network).
            landed = await self._write_one_by_one(operations)
        else:
            try:
                result = await self._c.bulk_write(operations, ordered=False)
                landed = result.matched_count + result.upserted_count + result.inserted_count
            except BulkWriteError:
                landed = -1
        if landed != len(operations):
            # Only a writer whose lease expired under it (and who still wrote) can get here.
            raise ConflictError(
                "a bucket of these points was changed by another writer meanwhile; send the "
                "points again (a point for a stored step replaces it)",
                field="points",
            )

    async def _write_summaries(
        self, copies: list[dict[str, Any]], appends: Sequence[UpdateOne] = ()
    ) -> None:
        """Each bucket's summary copy (whole, or moved by an append as its bucket was), unless
        a newer one is there (a writer whose lease expired under it must not put an older
        summary back); one round trip."""
        self._trip()
        collection = self._summaries._c
        newer = [({"_id": c["_id"], "w": {"$lt": c["w"]}}, c) for c in copies]
        if _is_mock(collection):
            # The mock's bulk_write does not take this PyMongo's operations (see above).
            for query, copy in newer:
                with contextlib.suppress(DuplicateKeyError):  # a newer copy is there
                    await collection.replace_one(query, copy, upsert=True)
            for append in appends:
                with contextlib.suppress(DuplicateKeyError):
                    await collection.update_one(append._filter, append._doc, upsert=True)
            return
        operations: list[ReplaceOne[Any] | UpdateOne] = [
            ReplaceOne(query, copy, upsert=True) for query, copy in newer
        ]
        operations.extend(appends)
        try:
            await collection.bulk_write(operations, ordered=False)
        except BulkWriteError as error:
            # A duplicate key is a newer copy already there; anything else is a failure.
            if any(not is_duplicate_key_code(e) for e in error.details.get("writeErrors", [])):
                raise

    async def _resync_summaries(self, job_id: str, committed: int) -> None:
        """After a writer died mid-call: the summary copies of the buckets written after the
        last completed write, from the buckets (the truth)."""
        self._trip()
        written = [
            _summary_copy(doc)
            async for doc in self._c.find(
                {"job_id": job_id, "w": {"$gt": committed}}, {f: 1 for f in SUMMARY_FIELDS}
            )
        ]
        if written:
            await self._write_summaries(written)

    async def _write_one_by_one(
        self, operations: Sequence[InsertOne[Any] | ReplaceOne[Any] | UpdateOne]
    ) -> int:
        landed = 0
        for operation in operations:
            try:
                if isinstance(operation, InsertOne):
                    await self._c.insert_one(operation._doc)
                    landed += 1
                elif isinstance(operation, UpdateOne):
                    result = await self._c.update_one(
                        operation._filter, operation._doc, upsert=True
                    )
                    landed += result.matched_count + (result.upserted_id is not None)
                else:
                    result = await self._c.replace_one(operation._filter, operation._doc)
                    landed += result.matched_count
            except DuplicateKeyError:
                return -1
        return landed

    async def _recount(self, job_id: str) -> tuple[int, dict[str, Sample]]:
        """The job's points and each key's last point, from the bucket summaries: after a
        writer died mid-call, what the job's counters must say."""
        self._trip()
        pipeline: list[dict[str, Any]] = [
            {"$match": {"job_id": job_id}},
            {"$sort": {"key": 1, "b": -1}},
            {"$group": {"_id": "$key", "n": {"$sum": "$n"}, "last": {"$first": "$last"}}},
        ]
        total = 0
        last: dict[str, Sample] = {}
        async for row in await aggregate(self._c, pipeline):
            total += int(row["n"])
            last[row["_id"]] = _sample(row["last"])
        return total, last

    # Reads -----------------------------------------------------------------------------

    async def keys_of(self, job_ids: Sequence[str]) -> dict[str, list[str]]:
        if not job_ids:
            return {}
        self._trip()
        cursor = self._jobs._c.find({"_id": {"$in": list(job_ids)}}, {"metric_steps": 1})
        found = {d["_id"]: sorted(d.get("metric_steps") or {}) async for d in cursor}
        return {job_id: found.get(job_id, []) for job_id in job_ids}

    async def summaries(
        self,
        job_ids: Sequence[str],
        keys: Sequence[str] | None,
        from_step: int,
        to_step: int,
    ) -> dict[tuple[str, str], list[BucketSummary]]:
        if not job_ids or keys == ():
            return {}
        query: dict[str, Any] = {"job_id": {"$in": list(job_ids)}}
        if keys is not None:
            query["key"] = {"$in": list(keys)}
        query["b"] = {"$gte": from_step >> BUCKET_SHIFT, "$lte": to_step >> BUCKET_SHIFT}
        self._trip()
        rows: list[tuple[str, str, int, BucketSummary]] = [
            (d["job_id"], d["key"], int(d["b"]), BucketSummary(d["_id"], _summary(d)))
            async for d in self._summaries._c.find(query, SUMMARY_FIELDS)
        ]
        rows.sort(key=lambda row: row[:3])
        found: dict[tuple[str, str], list[BucketSummary]] = defaultdict(list)
        for job_id, key, _, summary in rows:
            found[(job_id, key)].append(summary)
        return dict(found)

    async def open(self, refs: Sequence[str]) -> dict[str, list[Sample]]:
        if not refs:
            return {}
        self._trip()
        cursor = self._c.find({"_id": {"$in": list(refs)}}, {"s": 1, "v": 1, "t": 1})
        return {d["_id"]: list(zip(d["s"], d["v"], d["t"], strict=True)) async for d in cursor}

    async def positions(self, job_ids: Sequence[str]) -> dict[str, SeriesPosition]:
        if not job_ids:
            return {}
        self._trip()
        cursor = self._jobs._c.find(
            {"_id": {"$in": list(job_ids)}}, {"metric_seq": 1, "status": 1, "metric_lease": 1}
        )
        now = _now_ms()
        found = {}
        async for doc in cursor:
            lease = doc.get("metric_lease")
            found[doc["_id"]] = SeriesPosition(
                int(doc.get("metric_seq", 0)),
                TrainingStatus(doc["status"]),
                None if lease is None else int(lease["seq"]),
                lease is not None and int(lease["until"]) > now,
            )
        return found

    async def written_between(
        self, ranges: Mapping[str, tuple[int, int]], keys: Sequence[str] | None
    ) -> list[WrittenPoint]:
        wanted = {j: r for j, r in ranges.items() if r[1] > r[0]}
        if not wanted:
            return []
        branches = [{"job_id": j, "w": {"$gt": after}} for j, (after, _) in wanted.items()]
        query: dict[str, Any] = branches[0] if len(branches) == 1 else {"$or": branches}
        if keys is not None:
            query = {"$and": [query, {"key": {"$in": list(keys)}}]}
        self._trip()
        found: list[WrittenPoint] = []
        async for doc in self._c.find(
            query, {"job_id": 1, "key": 1, "s": 1, "v": 1, "t": 1, "q": 1}
        ):
            after, upto = wanted[doc["job_id"]]
            for step, value, ms, seq in zip(doc["s"], doc["v"], doc["t"], doc["q"], strict=True):
                if after < seq <= upto:
                    found.append(WrittenPoint(doc["job_id"], doc["key"], (step, value, ms), seq))
        found.sort(key=lambda p: (p.job_id, p.seq, p.key, p.sample[0]))
        return found


class _BucketPart(NamedTuple):
    """The points of one call that fall in one bucket: slices of their key's columns."""

    key: str
    b: int
    steps: list[int]
    values: list[float]
    stamps: list[int]


def _bucket_parts(columns: Sequence[KeyPoints]) -> list[_BucketPart]:
    """Each key's columns (ascending steps) cut at bucket boundaries (a bisection per bucket,
    not a test per point)."""
    parts = []
    for key, steps, values, stamps in columns:
        start, end = 0, len(steps)
        while start < end:
            b = steps[start] >> BUCKET_SHIFT
            stop = bisect.bisect_left(steps, (b + 1) << BUCKET_SHIFT, start, end)
            parts.append(
                _BucketPart(key, b, steps[start:stop], values[start:stop], stamps[start:stop])
            )
            start = stop
    return parts


def _merged(
    doc: Mapping[str, Any] | None, job_id: str, part: _BucketPart, seq: int
) -> tuple[dict[str, Any], int]:
    """The bucket with ``part``'s points merged in (replacing stored points of the same
    step), its summary recomputed; and how many points are new."""
    entries: dict[int, tuple[float, int, int]] = {}
    if doc is not None:
        entries = {
            int(s): (float(v), int(t), int(q))
            for s, v, t, q in zip(doc["s"], doc["v"], doc["t"], doc["q"], strict=True)
        }
    before = len(entries)
    for step, value, ms in zip(part.steps, part.values, part.stamps, strict=True):
        entries[step] = (value, ms, seq)
    steps = sorted(entries)
    samples = [(step, entries[step][0], entries[step][1]) for step in steps]
    bucket = _bucket_doc(
        job_id,
        part,
        seq,
        Summary.of(samples),
        steps,
        [entries[step][0] for step in steps],
        [entries[step][1] for step in steps],
        [entries[step][2] for step in steps],
    )
    return bucket, len(entries) - before


def _summary_of(part: _BucketPart) -> Summary:
    """``Summary.of`` the part's points, a column at a time: ``min`` and ``index`` keep the
    first point of the lowest value, as ``Summary.of`` does (likewise the highest)."""
    steps, values, stamps = part.steps, part.values, part.stamps
    low = values.index(min(values))
    high = values.index(max(values))
    return Summary(
        len(steps),
        (steps[0], values[0], stamps[0]),
        (steps[-1], values[-1], stamps[-1]),
        (steps[low], values[low], stamps[low]),
        (steps[high], values[high], stamps[high]),
    )


def _new_bucket(job_id: str, part: _BucketPart, seq: int) -> dict[str, Any]:
    """A bucket holding only ``part``'s points (ascending, one per step already)."""
    return _bucket_doc(
        job_id,
        part,
        seq,
        _summary_of(part),
        part.steps,
        part.values,
        part.stamps,
        [seq] * len(part.steps),
    )


def _bucket_doc(
    job_id: str,
    part: _BucketPart,
    seq: int,
    summary: Summary,
    steps: Sequence[int],
    values: Sequence[float],
    stamps: Sequence[int],
    seqs: Sequence[int],
) -> dict[str, Any]:
    """The stored bucket document of ``part``'s key and bucket, written at ``seq``: its summary
    and its points as columns (step, value, timestamp, write sequence), one layout for a new
    bucket and a merged one."""
    return {
        "_id": bucket_id(job_id, part.key, part.b),
        "job_id": job_id,
        "key": part.key,
        "b": part.b,
        "w": seq,
        "n": summary.count,
        "first": list(summary.first),
        "last": list(summary.last),
        "min": list(summary.min),
        "max": list(summary.max),
        "s": steps,
        "v": values,
        "t": stamps,
        "q": seqs,
    }


#: Stands for "no summary yet" in an append's comparisons (every stored value is finite).
_NO_MIN, _NO_MAX = float("inf"), float("-inf")


def _appended(job_id: str, part: _BucketPart, seq: int) -> tuple[UpdateOne, UpdateOne]:
    """The writes that append ``points`` (all past every step the bucket holds) to their
    bucket and to its summary copy, without reading either: each is one update pipeline that
    extends the point arrays and moves the summary (count added, ``first`` kept, ``last``
    replaced, ``min``/``max`` replaced only by a strictly lower/higher value, the first such
    point on a tie as ``Summary.of`` keeps), or creates the bucket. The bucket's update
    matches only if its last step is below the new points and its last write older than this
    one, so it can never disorder, duplicate or re-apply points (a miss turns into an insert,
    which fails on the existing ``_id``: the call is refused). Only the new points are sent
    and encoded; the stored ones never leave the database."""
    key, b, steps, values, stamps = part
    summary = _summary_of(part)
    moved: dict[str, Any] = {
        # Literals: a pipeline reads a string starting with "$" as a field path.
        "job_id": {"$literal": job_id},
        "key": {"$literal": key},
        "b": b,
        "w": seq,
        "n": {"$add": [{"$ifNull": ["$n", 0]}, summary.count]},
        "first": {"$ifNull": ["$first", {"$literal": list(summary.first)}]},
        "last": {"$literal": list(summary.last)},
        "min": {
            "$cond": [
                {"$lt": [summary.min[1], {"$ifNull": [{"$arrayElemAt": ["$min", 1]}, _NO_MIN]}]},
                {"$literal": list(summary.min)},
                "$min",
            ]
        },
        "max": {
            "$cond": [
                {"$gt": [summary.max[1], {"$ifNull": [{"$arrayElemAt": ["$max", 1]}, _NO_MAX]}]},
                {"$literal": list(summary.max)},
                "$max",
            ]
        },
    }
    arrays = {
        field: {"$concatArrays": [{"$ifNull": [f"${field}", []]}, {"$literal": column}]}
        for field, column in (("s", steps), ("v", values), ("t", stamps), ("q", [seq] * len(steps)))
    }
    bucket = bucket_id(job_id, key, b)
    return (
        UpdateOne(
            {"_id": bucket, "w": {"$lt": seq}, "last.0": {"$lt": steps[0]}},
            [{"$set": {**moved, **arrays}}],
            upsert=True,
        ),
        UpdateOne({"_id": bucket, "w": {"$lt": seq}}, [{"$set": moved}], upsert=True),
    )
