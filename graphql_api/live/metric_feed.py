"""The live metric feed: new points of some jobs' series, coalesced, resumable by cursor.

Points are not change events, so this feed does not tail the change log. Its position is the
per-job **write sequence** of the series (``storage/series.py``): every call that writes points
takes the job's next sequence number (under the job's series lease, so one job's writes are
serialised) and stamps it on each point it writes; the job document's ``metric_seq`` says which
write completed last. All points stamped up to ``metric_seq`` are stored before ``metric_seq``
moves past them, and no later write can stamp a number at or below it. So a reader that reads
``metric_seq = S`` and then every point stamped in ``(C, S]`` has every point written after its
position ``C`` up to ``S``, and the next read starts at ``S``: no gap, no duplicate.

A cursor names each job's position: ``after`` resumes every job it names from there (jobs it
does not name start from now). A point replaced after it was delivered (the same key and step
sent again) is stamped anew and delivered again with its new value.

The first message is sent at once (with the points a resume catches up on, or none): its cursor
is where the subscription starts. Coalescing: one read every ``interval`` seconds (at most ``1 /
interval`` messages a second per subscription), carrying every point written since the last
message; a backlog (a resume from long ago) is read ``MAX_WRITES_PER_READ`` writes per job at a
time, message after message without pausing. The feed ends once every job is final (COMPLETED,
FAILED, CANCELLED) and its last write is delivered; a write still holding the lease when the job
became final (it took the lease before) is waited for.

Cost: one round trip per subscription per interval while nothing is written (the jobs'
positions), plus one per message (the points). Subscriptions do not share reads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from graphql_api.domain.errors import NotFoundError, ValidationError, ValidationRule
from graphql_api.domain.lifecycle import FINAL_TRAINING_STATUSES
from graphql_api.services.metric_series import MetricSeriesService
from graphql_api.storage.series import SeriesPosition, WrittenPoint

#: Seconds between reads: at most two messages a second per subscription.
INTERVAL = 0.5
#: Writes (calls, each at most 1,000 points) read per job for one message: 10,000 points.
MAX_WRITES_PER_READ = 10
#: Jobs and keys one subscription may name.
MAX_JOBS = 100
MAX_KEYS = 100
_PREFIX = "met:"


def encode(positions: dict[str, int]) -> str:
    """The cursor of these per-job write sequences (job ids never hold ',' or '=')."""
    text = _PREFIX + ",".join(f"{job}={seq}" for job, seq in sorted(positions.items()))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str, field: str = "after") -> dict[str, int]:
    """The per-job positions behind ``cursor``; ValidationError (on ``field``) if it is none."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    positions: dict[str, int] = {}
    if text.startswith(_PREFIX):
        for part in filter(None, text.removeprefix(_PREFIX).split(",")):
            job, _, seq = part.partition("=")
            if not job or not seq.isdigit() or len(seq) > 18:
                break
            positions[job] = int(seq)
        else:
            return positions
    raise ValidationError(
        field,
        "is not a cursor of trainingMetricUpdates: pass back a message's cursor unchanged",
        rule=ValidationRule.cursor,
    )


@dataclass(frozen=True)
class MetricUpdate:
    """One message: the points written since the last, where to resume, jobs that ended."""

    cursor: str
    points: list[WrittenPoint]
    #: Jobs that reached a final status with every point delivered (in this message or before).
    ended: list[str]


def _done(position: SeriesPosition) -> bool:
    return position.status in FINAL_TRAINING_STATUSES and not position.writing


def _last_write(position: SeriesPosition) -> int:
    """The last write whose points a reader may take: the completed one, or, once the job is
    final and nobody holds the lease, the write of one that died holding it (its points that
    reached the buckets are stored, and no later write will complete it)."""
    if _done(position) and position.lease_seq is not None:
        return max(position.seq, position.lease_seq)
    return position.seq


async def metric_updates(
    series: MetricSeriesService,
    job_ids: Sequence[str],
    keys: Sequence[str] | None,
    after: str | None,
    interval: float = INTERVAL,
) -> AsyncGenerator[MetricUpdate, None]:
    """The messages of one ``trainingMetricUpdates`` subscription (see the module's doc)."""
    jobs = list(dict.fromkeys(job_ids))
    if not jobs:
        raise ValidationError("jobIds", "must name at least one job", ValidationRule.min_length)
    if len(jobs) > MAX_JOBS:
        raise ValidationError("jobIds", f"at most {MAX_JOBS} jobs", ValidationRule.max_items)
    if keys is not None and len(keys) > MAX_KEYS:
        raise ValidationError("keys", f"at most {MAX_KEYS} keys", ValidationRule.max_items)
    resume = None if after is None else decode(after)
    positions = await series.positions(jobs)
    for job in jobs:
        if job not in positions:
            raise NotFoundError("TrainingJob", job, field="jobIds")
    # Jobs the cursor names resume from there; the others (or all, without one) from now.
    cursor = {job: (resume or {}).get(job, positions[job].seq) for job in jobs}
    ended: set[str] = set()
    first = True
    while True:
        if not first:
            positions = await series.positions(jobs)
        ranges: dict[str, tuple[int, int]] = {}
        behind = False
        for job in jobs:
            position = positions.get(job)
            if job in ended or position is None:
                continue
            last = _last_write(position)
            upto = min(last, cursor[job] + MAX_WRITES_PER_READ)
            behind = behind or upto < last
            if upto > cursor[job]:
                ranges[job] = (cursor[job], upto)
        points = await series.written_between(ranges, keys) if ranges else []
        for job, (_, upto) in ranges.items():
            cursor[job] = upto
        newly_ended = [
            job
            for job in jobs
            if job not in ended
            and (
                job not in positions  # deleted: nothing more will come
                or (_done(positions[job]) and cursor[job] >= _last_write(positions[job]))
            )
        ]
        ended.update(newly_ended)
        if points or newly_ended or first:
            # The first message goes at once, points or not: its cursor is where the
            # subscription starts, so a client can resume from it even if nothing came yet.
            yield MetricUpdate(encode(cursor), points, newly_ended)
        first = False
        if len(ended) == len(jobs):
            return
        if not behind:
            await asyncio.sleep(interval)
