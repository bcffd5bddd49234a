"""The liveness sweep: jobs whose worker stopped heartbeating become LATE, then FAILED
(HEARTBEAT_LOST) after a grace; it runs inside the server (docs/workers.md).

With several server instances exactly one sweeps at a time: each run first takes (or renews)
a leader lease in the database, good for three intervals, so when the leader dies another
instance takes over within that time. A sweep is safe to run twice anyway: each change is a
conditional update on the lease still being lapsed and the health the sweep saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from graphql_api.domain.enums import JobHealth
from graphql_api.domain.values import utc_now
from graphql_api.services.training import MLTrainingService
from graphql_api.storage.base import LeaderStore, uncounted

log = logging.getLogger("mltrain.liveness")

LEADER_LEASE = "liveness-sweep"
#: Jobs one run changes per kind of change at most; the rest wait for the next run, so a
#: run's work is bounded however many workers died at once.
BATCH = 500


@dataclass(frozen=True)
class SweepResult:
    late: list[str]
    lost: list[str]
    timed_out: list[str]
    #: Failed jobs whose automatic next attempt this run created.
    retried: list[str]
    #: Jobs whose graceful cancel ran out of grace, cancelled by this run.
    cancelled: list[str]


class LivenessSweep:
    def __init__(
        self,
        training: MLTrainingService,
        leaders: LeaderStore,
        *,
        interval: float,
        grace: float,
        instance: str | None = None,
    ) -> None:
        self._training = training
        self._leaders = leaders
        self._interval = interval
        self._grace = timedelta(seconds=grace)
        #: This instance, as the leader lease names it.
        self.instance = instance or f"instance-{uuid.uuid4().hex[:12]}"
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self, now: datetime | None = None) -> SweepResult:
        """One sweep (whether or not this instance leads: callers decide): lapsed leases of
        HEALTHY jobs make them LATE; LATE jobs lapsed for longer than the grace fail; jobs
        running past their maxRuntimeSeconds fail with TIMED_OUT."""
        now = now or utc_now()
        jobs = self._training
        late = [
            job.job_id
            for job in await jobs.lapsed(now, JobHealth.HEALTHY, BATCH)
            if await jobs.mark_late(job, now) is not None
        ]
        cutoff = now - self._grace
        lost = [
            job.job_id
            for job in await jobs.lapsed(cutoff, JobHealth.LATE, BATCH)
            if await jobs.lose(job, cutoff) is not None
        ]
        timed_out = [
            job.job_id
            for job in await jobs.running_with_max_runtime(BATCH)
            if await jobs.time_out(job, now) is not None
        ]
        retried = [
            job.job_id
            for job in await jobs.retries_due(now, BATCH)
            if await jobs.retry_due(job) is not None
        ]
        cancelled = [
            job.job_id
            for job in await jobs.cancels_due(now, BATCH)
            if await jobs.force_cancel(job, now) is not None
        ]
        return SweepResult(late, lost, timed_out, retried, cancelled)

    async def lead(self, now: datetime | None = None) -> bool:
        """Take or renew the leader lease; whether this instance leads."""
        now = now or utc_now()
        until = now + timedelta(seconds=3 * self._interval)
        return await self._leaders.acquire(LEADER_LEASE, self.instance, now, until)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mltrain-liveness-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            # A clean shutdown hands the sweep over at once.
            with contextlib.suppress(Exception):
                await self._leaders.release(LEADER_LEASE, self.instance)

    async def _run(self) -> None:
        uncounted()  # background work: no request's round trips (StoreStats)
        while True:
            try:
                if await self.lead():
                    result = await self.sweep_once()
                    if any(vars(result).values()):
                        log.info("liveness sweep: %s", result)
            except Exception:
                # The database is away or failing: the next run tries again.
                log.exception("liveness sweep failed; retrying in %.1f s", self._interval)
            await asyncio.sleep(self._interval)
