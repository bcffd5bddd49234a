"""MetricSeriesService: per-step metric points of training jobs, written in batches and read
as downsampled curves (docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graphql_api.domain import series
from graphql_api.domain.errors import (
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
    ValidationRule,
)
from graphql_api.domain.leases import Fence
from graphql_api.domain.lifecycle import JobTransitions
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.series import MetricSeries, SeriesRange
from graphql_api.domain.values import utc_now
from graphql_api.storage.base import Storage
from graphql_api.storage.series import SeriesLimitExceeded, SeriesPosition, WrittenPoint

RESOURCE = "TrainingJob"


class MetricSeriesService:
    def __init__(self, storage: Storage) -> None:
        self._series = storage.metric_series
        self._jobs = storage.training_jobs

    async def report_points(
        self,
        job_id: str,
        points: Sequence[Mapping[str, Any]],
        *,
        lease_token: str | None = None,
    ) -> TrainingJob:
        """Store a batch of points of a RUNNING job (a point for a stored (key, step) replaces
        it) and move its latest ``metrics``. Points are not change events: nothing goes to the
        change log (the live series feed has its own cursor). Fenced by the worker's lease
        like every write a worker makes (``Fence``): LeaseLostError, nothing written."""
        checked = series.check_points(points, utc_now())
        return await self._store(job_id, checked, "points", Fence(lease_token))

    async def report_series(
        self,
        job_id: str,
        columns: Sequence[Mapping[str, Any]],
        *,
        lease_token: str | None = None,
    ) -> TrainingJob:
        """``report_points`` for the columnar form (per key ``steps``, ``values`` and optional
        ``timestamps``): the same rules, limits and write; only the shape differs."""
        checked = series.check_series(columns, utc_now())
        return await self._store(job_id, checked, "series", Fence(lease_token))

    async def _store(
        self, job_id: str, checked: Sequence[series.KeyPoints], field: str, fence: Fence
    ) -> TrainingJob:
        try:
            job = await self._series.append(
                job_id,
                checked,
                JobTransitions.REPORT_METRICS.sources,
                series.MAX_KEYS_PER_JOB,
                series.MAX_POINTS_PER_JOB,
                lease_token_hash=fence.token_hash,
                unclaimed_only=fence.token_hash is None,
            )
        except SeriesLimitExceeded as error:
            raise ValidationError(
                field,
                f"{RESOURCE} {job_id!r} stores {error.stored:,} metric {error.what}; with these "
                f"it would store {error.after:,}, over the limit of {error.limit:,} per job "
                "(nothing was written)",
                rule=ValidationRule.max_items,
            ) from None
        if job is None:
            current = await self._jobs.get(job_id)
            if current is None:
                raise NotFoundError(RESOURCE, job_id, field="jobId")
            fence.refuse(current)
            raise InvalidTransitionError(
                RESOURCE,
                job_id,
                current.status,
                None,
                f"{RESOURCE} {job_id!r} is {current.status.name}: metrics can only be "
                "reported while it is RUNNING",
            )
        return job

    async def keys(self, job_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._series.keys_of(job_ids)

    async def read(
        self, job_ids: Sequence[str], where: SeriesRange
    ) -> dict[str, list[MetricSeries]]:
        """Each job's series over ``where``: bucket summaries of every job and key in one
        round trip, then the buckets that must be opened, of all of them, in one more.
        Requested keys with no points come back empty (``totalPoints: 0``), not left out."""
        summaries = await self._series.summaries(
            job_ids, where.keys, where.from_step, where.to_step
        )
        to_open = [
            ref for buckets in summaries.values() for ref in series.buckets_to_open(buckets, where)
        ]
        opened = await self._series.open(to_open)
        found: dict[str, list[MetricSeries]] = {}
        for job_id in job_ids:
            keys = where.keys
            if keys is None:
                keys = tuple(sorted(k for j, k in summaries if j == job_id))
            found[job_id] = [
                series.read_series(key, summaries.get((job_id, key), []), opened, where)
                for key in keys
            ]
        return found

    async def positions(self, job_ids: Sequence[str]) -> dict[str, SeriesPosition]:
        return await self._series.positions(job_ids)

    async def written_between(
        self, ranges: Mapping[str, tuple[int, int]], keys: Sequence[str] | None
    ) -> list[WrittenPoint]:
        return await self._series.written_between(ranges, keys)
