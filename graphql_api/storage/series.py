"""The storage contract of metric series (``Storage.metric_series``).

Points live in buckets: one document per job x key x step range, holding the points and their
summary (count, first, last, min, max), each written whole in one document write, so a summary
always describes exactly the points beside it. The job's document carries what spans buckets:
the latest value and step per key (``metrics``), the number of points stored, and the series
write sequence (``seq``): every call that writes points takes the job's next sequence number
and stamps it on each point and bucket it writes, so a reader can ask for everything written
after a sequence number (the live feed's cursor). See ``storage/mongo/metric_series.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from graphql_api.domain.downsampling import Sample
from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.series import BucketSummary, KeyPoints


class SeriesLimitExceeded(Exception):
    """Storing the points would take the job over ``limit`` of ``what`` (``keys`` or
    ``points``); nothing was written."""

    def __init__(self, what: str, stored: int, after: int, limit: int) -> None:
        super().__init__(f"{what}: {stored} stored, {after} after the write, limit {limit}")
        self.what = what
        self.stored = stored
        self.after = after
        self.limit = limit


@dataclass(frozen=True)
class SeriesPosition:
    """Where a job's series stand: the last completed write sequence, the job's status, and
    the lease of a write under way (or of one that died holding it)."""

    seq: int
    status: TrainingStatus
    #: The write sequence of the lease held on the job's series, if any.
    lease_seq: int | None = None
    #: Whether that lease is still live (its writer may still write and commit).
    writing: bool = False


@dataclass(frozen=True)
class WrittenPoint:
    job_id: str
    key: str
    sample: Sample
    #: The write sequence that stored it.
    seq: int


class MetricSeriesStore(Protocol):
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
        """Store the points (each key's columns; a point for a stored (key, step) replaces it)
        and move the job's latest values, if the job's status is one of ``allowed`` (and, with
        ``lease_token_hash``, its lease is that one; with ``unclaimed_only``, no worker holds
        it: the fencing of ``TrainingJobStore.update``); the job after, or None (not found, not
        in an allowed status, or fenced off: nothing written). SeriesLimitExceeded (nothing
        written) when the stored keys or points would pass the limits. ConflictError when the
        job's series stayed busy with another writer for too long."""

    async def keys_of(self, job_ids: Sequence[str]) -> dict[str, list[str]]:
        """Each job's series keys, sorted; one round trip."""

    async def summaries(
        self,
        job_ids: Sequence[str],
        keys: Sequence[str] | None,
        from_step: int,
        to_step: int,
    ) -> dict[tuple[str, str], list[BucketSummary]]:
        """The summaries of the buckets of these jobs (and keys; None: all) that may hold steps
        in the range, ascending per (job, key); one round trip for any number of series."""

    async def open(self, refs: Sequence[str]) -> dict[str, list[Sample]]:
        """The points of these buckets (``BucketSummary.ref``), ascending; one round trip."""

    async def positions(self, job_ids: Sequence[str]) -> dict[str, SeriesPosition]:
        """Each existing job's completed write sequence and status; one round trip."""

    async def written_between(
        self, ranges: Mapping[str, tuple[int, int]], keys: Sequence[str] | None
    ) -> list[WrittenPoint]:
        """The points (of ``keys``; None: all) whose write sequence ``q`` has
        ``after < q <= upto`` for each job's ``(after, upto)``; one round trip."""
