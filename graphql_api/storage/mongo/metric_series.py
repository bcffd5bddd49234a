"""Metric series in MongoDB: bucketed points, summaries written with them, a per-job lease.

**Buckets.** Collection ``metric_buckets``: one document per job x key x range of
``BUCKET_STEPS`` steps (bucket ``b = step >> 10``), ``_id`` ``<job>\\x1f<key>\\x1f<b>`` (keys
and job ids never hold control characters, so the id is unambiguous). It holds its points as
parallel arrays sorted by step (``s`` steps, ``v`` values, ``t`` timestamps in ms, ``q`` the
write sequence that stored each point) and their summary: ``n`` (count), ``first``,
``last``, ``min``, ``max`` (each ``[step, value, timestamp]``), and ``w``, the write sequence
of its last write. A bucket is always written whole (points and summary in one document
write), so on every server, with or without transactions, a summary describes exactly the
points beside it.

**Summary copies.** Collection ``metric_summaries`` holds a copy of each bucket's summary
(same ``_id``, no points: about 200 bytes instead of up to 40 KB), written right after the
buckets. Range reads fetch summaries from there: on DocumentDB a projection still reads every
whole document it returns, and reading the summaries of a 1,000,000-point series from the
buckets themselves read 40 MB (measured: the compare query of 20 x 100,000 points took more
than 2.5 s that way). A copy is written only over an older one (``w`` lower), so a writer
whose lease expired under it cannot put an older summary back.

**One writer per job at a time.** A call that writes points first takes the job's series
lease (a conditional update of the job document: ``metric_lease {seq, until}``, the next
write sequence, refused while another live lease is held), then reads the buckets it touches,
merges, checks the limits against what is stored, writes the buckets (one unordered bulk
write, each replacement conditional on the bucket's ``w`` as read), then their summary
copies, and commits on the job
document: the latest value and step per key (``metrics``, ``metric_steps``), the number of
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
cursor one write behind. A call refused by a limit releases the lease without writing
anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, IndexModel, InsertOne, ReplaceOne, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from graphql_api.domain.downsampling import Sample, Summary
from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.errors import ConflictError
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.series import BucketSummary, MetricPoint
from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo import documents
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
        points: Sequence[MetricPoint],
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
        job = await self._acquire(job_id, [s.value for s in allowed], fence)
        if job is None:
            return None
        lease = job["metric_lease"]
        seq = int(lease["seq"])
        written = False
        try:
            grouped: dict[tuple[str, int], list[MetricPoint]] = defaultdict(list)
            for point in points:
                grouped[(point.key, point.step >> BUCKET_SHIFT)].append(point)
            ids = {bucket_id(job_id, key, b): (key, b) for key, b in grouped}
            self._trip()
            current = {d["_id"]: d async for d in self._c.find({"_id": {"$in": list(ids)}})}
            stored_points = int(job.get("metric_points", 0))
            metric_steps: dict[str, int] = dict(job.get("metric_steps") or {})
            healed: dict[str, Sample] = {}
            if lease.get("stale"):
                await self._resync_summaries(job_id, int(job.get("metric_seq", 0)))
                stored_points, healed = await self._recount(job_id)
                for key, last in healed.items():
                    if last[0] >= metric_steps.get(key, -1):
                        metric_steps[key] = last[0]
            operations: list[InsertOne[Any] | ReplaceOne[Any]] = []
            added = 0
            for bucket, (key, b) in ids.items():
                doc, new = _merged(current.get(bucket), job_id, key, b, grouped[(key, b)], seq)
                added += new
                if bucket in current:
                    operations.append(ReplaceOne({"_id": bucket, "w": current[bucket]["w"]}, doc))
                else:
                    operations.append(InsertOne(doc))
            stored_keys = set((job.get("metrics") or {}).keys())
            keys_after = len(stored_keys | {p.key for p in points})
            if keys_after > max_keys:
                raise SeriesLimitExceeded("keys", len(stored_keys), keys_after, max_keys)
            if stored_points + added > max_points:
                raise SeriesLimitExceeded(
                    "points", stored_points, stored_points + added, max_points
                )
            written = True
            await self._write_buckets(operations)
            await self._write_summaries([_summary_copy(op._doc) for op in operations])
            latest: dict[str, MetricPoint] = {}
            for point in points:
                best = latest.get(point.key)
                if best is None or point.step > best.step:
                    latest[point.key] = point
            changes: dict[str, Any] = {}
            for key, last in healed.items():
                if last[0] >= metric_steps.get(key, -1) and key not in latest:
                    changes[f"metrics.{key}"] = last[1]
            for key, point in latest.items():
                if point.step >= metric_steps.get(key, -1):
                    changes[f"metrics.{key}"] = point.value
                    metric_steps[key] = point.step
            for key, step in metric_steps.items():
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
            # Refused before writing: nothing to heal. Failed after: whoever comes next
            # recounts (the lease is left expired, marked stale).
            await asyncio.shield(self._give_up(job_id, seq, heal=written))
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
        self, job_id: str, allowed: list[str], fence: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The job's document with this call's lease in it, or None (no such job, not in an
        allowed status, or not matching ``fence``: a worker's lease). Waits while another
        writer holds a live lease."""
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
            return {"metric_lease": {"seq": last + 1, "until": until, "stale": held is not None}}

        reads = ["metric_lease", "metric_seq"]
        while True:
            try:
                return await self._jobs._update_checked(
                    job_id, allowed, lease_for, reads, where=fence
                )
            except _Busy:
                if time.monotonic() + pause > give_up_at:
                    raise ConflictError(
                        f"TrainingJob {job_id!r} is receiving points from another call that "
                        "has not finished; retry",
                        field="jobId",
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, LONGEST_WAIT)

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

    async def _write_buckets(self, operations: list[InsertOne[Any] | ReplaceOne[Any]]) -> None:
        replacements = sum(isinstance(op, ReplaceOne) for op in operations)
        self._trip()
        if _is_mock(self._c):
            # mongomock's bulk_write does not take the operations of the PyMongo it runs
            # with (ReplaceOne passes ``sort``): the in-memory mock applies them one by one,
            # in process (still one "round trip": nothing crosses a network).
            matched = await self._write_one_by_one(operations)
        else:
            try:
                matched = (await self._c.bulk_write(operations, ordered=False)).matched_count
            except BulkWriteError:
                matched = -1
        if matched != replacements:
            # Only a writer whose lease expired under it (and who still wrote) can get here.
            raise ConflictError(
                "a bucket of these points was changed by another writer meanwhile; send the "
                "points again (a point for a stored step replaces it)",
                field="points",
            )

    async def _write_summaries(self, copies: list[dict[str, Any]]) -> None:
        """Each bucket's summary copy, unless a newer one is there already (a writer whose
        lease expired under it must not put an older summary back)."""
        self._trip()
        collection = self._summaries._c
        newer = [({"_id": c["_id"], "w": {"$lt": c["w"]}}, c) for c in copies]
        if _is_mock(collection):
            # The mock's bulk_write does not take this PyMongo's operations (see below).
            for query, copy in newer:
                with contextlib.suppress(DuplicateKeyError):  # a newer copy is there
                    await collection.replace_one(query, copy, upsert=True)
            return
        try:
            await collection.bulk_write(
                [ReplaceOne(query, copy, upsert=True) for query, copy in newer], ordered=False
            )
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

    async def _write_one_by_one(self, operations: list[InsertOne[Any] | ReplaceOne[Any]]) -> int:
        matched = 0
        for operation in operations:
            if isinstance(operation, InsertOne):
                try:
                    await self._c.insert_one(operation._doc)
                except DuplicateKeyError:
                    return -1
            else:
                result = await self._c.replace_one(operation._filter, operation._doc)
                matched += result.matched_count
        return matched

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
        async for row in self._c.aggregate(pipeline):
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


def _merged(
    doc: Mapping[str, Any] | None,
    job_id: str,
    key: str,
    b: int,
    points: Sequence[MetricPoint],
    seq: int,
) -> tuple[dict[str, Any], int]:
    """The bucket with ``points`` merged in (replacing stored points of the same step), its
    summary recomputed; and how many points are new."""
    entries: dict[int, tuple[float, int, int]] = {}
    if doc is not None:
        entries = {
            int(s): (float(v), int(t), int(q))
            for s, v, t, q in zip(doc["s"], doc["v"], doc["t"], doc["q"], strict=True)
        }
    before = len(entries)
    for point in points:
        entries[point.step] = (point.value, point.timestamp_ms, seq)
    steps = sorted(entries)
    samples = [(step, entries[step][0], entries[step][1]) for step in steps]
    summary = Summary.of(samples)
    bucket = {
        "_id": bucket_id(job_id, key, b),
        "job_id": job_id,
        "key": key,
        "b": b,
        "w": seq,
        "n": summary.count,
        "first": list(summary.first),
        "last": list(summary.last),
        "min": list(summary.min),
        "max": list(summary.max),
        "s": steps,
        "v": [entries[step][0] for step in steps],
        "t": [entries[step][1] for step in steps],
        "q": [entries[step][2] for step in steps],
    }
    return bucket, len(entries) - before
