"""MLTrainingService: creating training jobs and driving them through their lifecycle."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from graphql_api.domain import text, validation
from graphql_api.domain.enums import FailureKind, JobHealth, ModelStatus, TrainingStatus
from graphql_api.domain.errors import (
    ConflictError,
    CursorExpiredError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
    ValidationRule,
)
from graphql_api.domain.events import ChangeKind, StoredEvent
from graphql_api.domain.ids import new_id
from graphql_api.domain.leases import (
    DEFAULT_LEASE_SECONDS,
    MAX_LEASE_SECONDS,
    MIN_LEASE_SECONDS,
    Fence,
    GrantedLease,
    token_hash,
)
from graphql_api.domain.lifecycle import JobTransitions, Transition
from graphql_api.domain.models import LeasedTrainingJob, TrainingJob
from graphql_api.domain.queries import (
    MetricOrder,
    Page,
    PageRequest,
    TrainingJobFilter,
    TrainingJobOrder,
)
from graphql_api.domain.series import MAX_KEYS_PER_JOB
from graphql_api.domain.updates import (
    CancelDeadline,
    CancelRequest,
    Change,
    ExitCode,
    FailureReason,
    HealthChange,
    Heartbeat,
    LeaseEnd,
    LeaseGrant,
    LogsUrl,
    MetricsMerge,
    Move,
    Retried,
    RetryScheduled,
    RetryWithdrawn,
)
from graphql_api.domain.values import DEFAULT_QUEUE, utc_now
from graphql_api.services.outbox import Outbox, new_pending
from graphql_api.storage.base import MergeLimitExceeded, PendingChange, RecordBusy, Storage

RESOURCE = "TrainingJob"
#: Jobs one claim may lose to racing workers before it gives up with a ConflictError.
MAX_CLAIM_ATTEMPTS = 200
#: The longest grace a graceful cancel may give: a day.
MAX_CANCEL_GRACE_SECONDS = 86400
#: A chain holds at most this many attempts (automatic and by hand), so ``attempts`` is whole.
MAX_ATTEMPTS_LISTED = 100
#: Namespace of the attempts' ids: uuid5(chain's first job id + "#" + attempt number).
ATTEMPT_IDS = uuid.UUID("6f1c1d0e-6a47-4d53-9a3f-2b3c1f0e9a11")
#: The actor of the changes the liveness sweep makes (services.liveness).
SWEEP_ACTOR = "system:liveness-sweep"
#: Pending changes of others one change waits for before it gives up. Concurrent changes of
#: one record take turns (one lands per turn, each waiting for the last one's event): 10 left
#: some of 20 concurrent metric reports of one job with a ConflictError on DocumentDB.
MAX_SETTLE_ATTEMPTS = 100

#: The changes of one write: given, or made at the time of the change's event (its dates).
Changes = Sequence[Change] | Callable[[datetime], Sequence[Change]]


class MLTrainingService:
    def __init__(self, storage: Storage) -> None:
        self._jobs = storage.training_jobs
        self._versions = storage.model_versions
        self._events = storage.events
        self._outbox = Outbox(storage)

    async def clear_relayed_events(self) -> None:
        """Clear, in one round trip, the pending changes of the jobs whose events this service
        relayed and left in their records (``Outbox.publish_job``); the outbox sweep calls it
        every pass."""
        await self._outbox.clear_relayed_jobs()

    # Reads -----------------------------------------------------------------------------

    async def get(self, job_id: str) -> TrainingJob | None:
        return await self._jobs.get(job_id)

    async def find(
        self,
        where: TrainingJobFilter,
        order: TrainingJobOrder | MetricOrder,
        page: PageRequest,
    ) -> Page[TrainingJob]:
        return await self._jobs.find(where, order, page)

    async def lapsed(self, before: datetime, health: JobHealth, limit: int) -> list[TrainingJob]:
        """RUNNING jobs of ``health`` whose lease lapsed before ``before`` (the sweep)."""
        return await self._jobs.lapsed(before, health, limit)

    async def count(self, where: TrainingJobFilter) -> int:
        return await self._jobs.count(where)

    async def list_per_model(
        self,
        model_ids: Sequence[str],
        where: TrainingJobFilter,
        order: TrainingJobOrder,
        first: int,
    ) -> dict[str, Page[TrainingJob]]:
        return await self._jobs.find_per_model(model_ids, where, order, first)

    async def count_per_model(
        self, model_ids: Sequence[str], where: TrainingJobFilter
    ) -> dict[str, int]:
        return await self._jobs.count_per_model(model_ids, where)

    async def history_pages(
        self, job_ids: Sequence[str], after_seq: int, first: int
    ) -> dict[str, list[StoredEvent]]:
        """Each job's recorded changes after ``after_seq``, oldest first: ``first`` of them and
        one more when a next page exists; batched over many jobs. CursorExpiredError when
        ``after_seq`` is below the log's retention floor (read after the page: the floor rises
        before events are deleted, so a page read while it was still below is whole)."""
        pages = await self._events.page_for_entities(job_ids, after_seq, first)
        if after_seq > 0 and after_seq < await self._events.floor():
            raise CursorExpiredError()
        return pages

    async def history_counts(self, job_ids: Sequence[str]) -> dict[str, int]:
        """How many changes each job has recorded, batched."""
        return await self._events.count_for_entities(job_ids)

    # Changes ---------------------------------------------------------------------------

    async def create(
        self,
        *,
        model_id: str,
        dataset_id: str,
        hyperparameters: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        logs_url: str | None = None,
        queue: str | None = None,
        max_runtime_seconds: int | None = None,
        retry_policy: RetryPolicy | None = None,
        actor: str | None = None,
    ) -> TrainingJob:
        """A PENDING job for an existing model version, in ``queue`` (the default one if
        None)."""
        job = validation.build(
            TrainingJob,
            job_id=job_id if job_id is not None else new_id(),
            model_id=model_id,
            dataset_id=dataset_id,
            hyperparameters=hyperparameters if hyperparameters is not None else {},
            logs_url=logs_url,
            queue=DEFAULT_QUEUE if queue is None else queue,
            max_runtime_seconds=_max_runtime(max_runtime_seconds),
            **_retry_fields(retry_policy),
            created_date=utc_now(),
        )
        version = await self._versions.get(model_id)
        if version is None:
            raise NotFoundError("ModelVersion", model_id, field="modelId")
        _refuse_retired(version.model_id, version.status)
        pending = new_pending(JobTransitions.CREATE.kind, None, actor)
        await self._jobs.insert(job, pending)
        await self._outbox.publish_job(job, pending)
        return job

    async def start(
        self,
        job_id: str,
        *,
        worker_id: str | None = None,
        lease_seconds: int | None = None,
        actor: str | None = None,
    ) -> LeasedTrainingJob:
        """PENDING -> RUNNING for a caller that picked the job itself, with a lease. Given a
        ``worker_id``, the job is held like a claimed one: its writes must carry the token."""
        lease = GrantedLease.new(_lease_seconds(lease_seconds))
        holder = _worker_id(worker_id, required=False)

        def grant(at: datetime) -> list[Change]:
            hashed = token_hash(lease.token)
            return [LeaseGrant(worker_id=holder, token_hash=hashed, seconds=lease.seconds, at=at)]

        job = await self._move(job_id, JobTransitions.START, actor, grant)
        return _leased(job, lease)

    async def claim(
        self,
        queue: str,
        worker_id: str,
        lease_seconds: int | None = None,
        *,
        model_ids: Collection[str] | None = None,
        actor: str | None = None,
    ) -> LeasedTrainingJob | None:
        """The oldest PENDING job of ``queue``, now RUNNING for ``worker_id`` under a new
        lease; None when the queue has no PENDING job. Racing workers never get the same job
        (storage: one conditional update per attempt). With ``model_ids`` (a key limited to
        model names), only jobs of those versions are claimed."""
        queue = validation.checked(text.check_id, queue, "queue")
        holder = _worker_id(worker_id, required=True)
        lease = GrantedLease.new(_lease_seconds(lease_seconds))
        row = JobTransitions.CLAIM
        for _ in range(MAX_SETTLE_ATTEMPTS):
            # The claim and its event are one write (the outbox); the event's time is the
            # claim's (startedDate, lastHeartbeatAt).
            pending = new_pending(row.kind, TrainingStatus.PENDING.value, actor)
            at = pending.occurred_at
            changes: list[Change] = [
                Move(transition=row, at=at),
                LeaseGrant(
                    worker_id=holder,
                    token_hash=token_hash(lease.token),
                    seconds=lease.seconds,
                    at=at,
                ),
            ]
            try:
                job = await self._jobs.claim(
                    queue,
                    changes,
                    max_attempts=MAX_CLAIM_ATTEMPTS,
                    model_ids=model_ids,
                    pending=pending,
                    logged=self._outbox.logged_job_events,
                )
            except RecordBusy as busy:
                # The oldest job is blocked by its own event (just created): relay it first.
                await self._outbox.settle_job(busy.record_id)
                continue
            if job is None:
                return None
            await self._outbox.publish_job(job, pending)
            return _leased(job, lease)
        raise ConflictError(
            f"claiming a job of queue {queue!r}: the oldest jobs stayed busy; retry"
        )

    async def complete(
        self,
        job_id: str,
        metrics: Mapping[str, float] | None = None,
        *,
        lease_token: str | None = None,
        actor: str | None = None,
    ) -> TrainingJob:
        """RUNNING -> COMPLETED, merging the final ``metrics`` into those reported so far."""
        final = validation.metrics(metrics if metrics is not None else {})
        return await self._move(
            job_id,
            JobTransitions.COMPLETE,
            actor,
            [MetricsMerge(metrics=final, limit=MAX_KEYS_PER_JOB)] if final else [],
            fence=Fence(lease_token),
        )

    async def fail(
        self,
        job_id: str,
        reason: str,
        *,
        kind: FailureKind = FailureKind.USER_CODE,
        exit_code: int | None = None,
        lease_token: str | None = None,
        actor: str | None = None,
    ) -> TrainingJob:
        reason = validation.checked(text.check_text, reason.strip(), "reason")
        # The retry policy (fixed at creation) says whether this failure is retried: read
        # first, so that the mark for the sweep is part of the failure's own write.
        policy = await self._require(job_id)

        def failure(at: datetime) -> list[Change]:
            made: list[Change] = [FailureReason(reason=reason, kind=kind)]
            if exit_code is not None:
                made.append(ExitCode(exit_code=exit_code))
            return made + _retry_mark(policy, kind, at)

        return await self._move(
            job_id, JobTransitions.FAIL, actor, failure, fence=Fence(lease_token)
        )

    async def retry(
        self,
        job_id: str,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        actor: str | None = None,
        refuse_retired: bool = True,
    ) -> TrainingJob:
        """The next attempt of a job that ended: a new PENDING job in the same queue, with
        the same hyperparameters (or ``hyperparameters``), ``retry_of`` this one. Its id is
        derived from the chain and the attempt number, so an attempt is retried at most once
        (however many ask at the same time): the others get ConflictError. A job of an
        ARCHIVED version is not retried (ConflictError, modelId), as it is not created."""
        params = None if hyperparameters is None else validation.hyperparameters(hyperparameters)
        job = await self._require(job_id)
        row = JobTransitions.RETRY
        if job.status not in row.sources:
            raise InvalidTransitionError(
                RESOURCE,
                job_id,
                job.status.value,
                None,
                f"{RESOURCE} {job_id!r} is {job.status.value}: only a job that ended "
                "(COMPLETED, FAILED or CANCELLED) can be retried",
            )
        if refuse_retired:
            version = await self._versions.get(job.model_id)
            if version is not None:
                _refuse_retired(version.model_id, version.status)
        root = job.retry_root or job.job_id
        # A chain is a line: each attempt is retried at most once (the next attempt's id is
        # fixed by the chain and its number, so a second retry of it is a ConflictError).
        attempt = job.attempt + 1
        if attempt > MAX_ATTEMPTS_LISTED:
            raise ConflictError(
                f"{RESOURCE} {root!r} has {attempt - 1} attempts, the most a chain may have",
                field="jobId",
            )
        nxt = job.model_copy(
            update={
                "job_id": str(uuid.uuid5(ATTEMPT_IDS, f"{root}#{attempt}")),
                "status": TrainingStatus.PENDING,
                "hyperparameters": job.hyperparameters if params is None else params,
                "started_date": None,
                "completed_date": None,
                "metrics": {},
                "logs_url": None,
                "created_date": utc_now(),
                "failure_reason": None,
                "failure_kind": None,
                "failure_retryable": False,
                "failure_exit_code": None,
                "worker_id": None,
                "lease_expires_at": None,
                "lease_seconds": None,
                "last_heartbeat_at": None,
                "lease_token_hash": None,
                "health": JobHealth.HEALTHY,
                "attempt": attempt,
                "retry_of": job.job_id,
                "retry_root": root,
                "retry_due_at": None,
                "retried_by": None,
            }
        )
        created = new_pending(JobTransitions.CREATE.kind, None, actor)
        await self._jobs.insert(nxt, created)  # ConflictError (jobId) if this attempt exists
        await self._outbox.publish_job(nxt, created)
        await self._change(job_id, row.sources, [Retried(by=nxt.job_id)], row.kind, actor)
        return nxt

    async def retry_due(self, job: TrainingJob) -> TrainingJob | None:
        """The sweep: create the automatic next attempt of ``job``; None if another sweep did
        it first, or if its model version was archived meanwhile (no attempt is made, as
        ``createTrainingJob`` and ``retryTrainingJob`` refuse one: the mark is cleared)."""
        version = await self._versions.get(job.model_id)
        if version is not None and version.status is ModelStatus.ARCHIVED:
            # Without an event, as the mark itself was: the API shows neither. The chain
            # (``attempts``) ends with this failure; docs/workers.md says why.
            await self._change(
                job.job_id, {TrainingStatus.FAILED}, [RetryWithdrawn()], None, SWEEP_ACTOR
            )
            return None
        try:
            # The version was read just above: not again. So a ConflictError here means only
            # "created already" (below).
            return await self.retry(job.job_id, actor=SWEEP_ACTOR, refuse_retired=False)
        except ConflictError:
            # Created by a run that died before clearing the mark: clear it now.
            await self._change(
                job.job_id,
                {TrainingStatus.FAILED},
                [
                    Retried(
                        by=str(
                            uuid.uuid5(
                                ATTEMPT_IDS, f"{job.retry_root or job.job_id}#{job.attempt + 1}"
                            )
                        )
                    )
                ],
                JobTransitions.RETRY.kind,
                SWEEP_ACTOR,
            )
            return None

    async def retries_due(self, now: datetime, limit: int) -> list[TrainingJob]:
        return await self._jobs.retries_due(now, limit)

    async def attempts(self, job: TrainingJob) -> list[TrainingJob]:
        """The job's chain of attempts, first to last."""
        return await self._jobs.attempts(job.retry_root or job.job_id, MAX_ATTEMPTS_LISTED)

    async def cancel(
        self, job_id: str, grace_seconds: int | None = None, *, actor: str | None = None
    ) -> TrainingJob:
        """Without ``grace_seconds``: CANCELLED at once (PENDING or RUNNING). With it: a
        PENDING job is cancelled at once; a RUNNING one gets ``cancel_requested_at`` and a
        CANCEL_REQUESTED event, its worker acknowledges (acknowledge_cancel) within the grace,
        or the sweep cancels it when the grace runs out. Asking again changes nothing."""
        if grace_seconds is None:
            return await self._move(job_id, JobTransitions.CANCEL, actor)
        if not 0 <= grace_seconds <= MAX_CANCEL_GRACE_SECONDS:
            rule = ValidationRule.min if grace_seconds < 0 else ValidationRule.max
            raise ValidationError(
                "graceSeconds", f"must be 0-{MAX_CANCEL_GRACE_SECONDS}", rule=rule
            )
        cancel = JobTransitions.CANCEL
        unstarted = await self._change(
            job_id,
            {TrainingStatus.PENDING},
            lambda at: [Move(transition=cancel, at=at)],
            cancel.kind,
            actor,
            previous=TrainingStatus.PENDING,
        )
        if unstarted is not None:
            return unstarted
        row = JobTransitions.REQUEST_CANCEL
        requested = await self._change(
            job_id,
            row.sources,
            lambda at: [
                CancelRequest(at=at),
                CancelDeadline(deadline=at + timedelta(seconds=grace_seconds)),
            ],
            row.kind,
            actor,
            cancel_requested=False,
        )
        if requested is not None:
            return requested
        current = await self._require(job_id)
        if current.status is TrainingStatus.RUNNING:
            return current  # asked already: the first request's grace stands
        raise InvalidTransitionError(
            RESOURCE, job_id, current.status.value, TrainingStatus.CANCELLED.value
        )

    async def acknowledge_cancel(
        self, job_id: str, *, lease_token: str | None = None, actor: str | None = None
    ) -> TrainingJob:
        """The worker stopped (having saved what it needs) after a graceful cancel was asked
        for: RUNNING -> CANCELLED. InvalidTransitionError if no cancel was asked for."""
        row = JobTransitions.ACKNOWLEDGE_CANCEL
        fence = Fence(lease_token)
        job = await self._change(
            job_id,
            row.sources,
            lambda at: [Move(transition=row, at=at), LeaseEnd()],
            row.kind,
            actor,
            previous=TrainingStatus.RUNNING,
            fence=fence,
            cancel_requested=True,
        )
        if job is not None:
            return job
        current = await self._require(job_id)
        fence.refuse(current)
        raise InvalidTransitionError(
            RESOURCE,
            job_id,
            current.status.value,
            TrainingStatus.CANCELLED.value,
            f"{RESOURCE} {job_id!r} is {current.status.value} with no cancel asked for: "
            "only a requested cancel is acknowledged",
        )

    async def force_cancel(self, job: TrainingJob, now: datetime) -> TrainingJob | None:
        """The sweep: the grace of ``job``'s cancel ran out before ``now``: CANCELLED, and its
        lease ends. None if it is no longer RUNNING (acknowledged meanwhile)."""
        if job.cancel_deadline_at is None or job.cancel_deadline_at >= now:
            return None
        row = JobTransitions.FORCE_CANCEL
        return await self._change(
            job.job_id,
            row.sources,
            lambda at: [Move(transition=row, at=at), LeaseEnd()],
            row.kind,
            SWEEP_ACTOR,
            previous=TrainingStatus.RUNNING,
        )

    async def cancels_due(self, now: datetime, limit: int) -> list[TrainingJob]:
        return await self._jobs.cancels_due(now, limit)

    async def report_metrics(
        self,
        job_id: str,
        metrics: Mapping[str, float],
        *,
        lease_token: str | None = None,
        actor: str | None = None,
    ) -> TrainingJob:
        """Merge progress metrics into a RUNNING job (later values of a key replace earlier)."""
        checked = validation.metrics(metrics)
        if not checked:
            raise ValidationError(
                "metrics", "must name at least one metric", rule=ValidationRule.min_length
            )
        fence = Fence(lease_token)
        job = await self._change(
            job_id,
            JobTransitions.REPORT_METRICS.sources,
            [MetricsMerge(metrics=checked, limit=MAX_KEYS_PER_JOB)],
            JobTransitions.REPORT_METRICS.kind,
            actor,
            fence=fence,
        )
        if job is None:
            current = await self._require(job_id)
            fence.refuse(current)
            raise InvalidTransitionError(
                RESOURCE,
                job_id,
                current.status.value,
                None,
                f"{RESOURCE} {job_id!r} is {current.status.value}: metrics can only be "
                "reported while it is RUNNING",
            )
        return job

    async def heartbeat(
        self, job_id: str, lease_token: str, *, actor: str | None = None
    ) -> TrainingJob:
        """The worker holding ``job_id`` under ``lease_token`` is alive: its lease runs its
        length again from now. LeaseLostError if the token is not the job's lease (nothing
        changes); InvalidTransitionError once the job is no longer RUNNING."""
        fence = Fence(lease_token)
        # The lease's length as granted: a read, since the update cannot compute it (no
        # pipeline updates on every server this runs on); 60 s for a job from before leases.
        current = await self._require(job_id)
        seconds = current.lease_seconds or DEFAULT_LEASE_SECONDS
        change = Heartbeat(seconds=seconds, at=utc_now())
        sources = JobTransitions.HEARTBEAT.sources
        if current.health is JobHealth.LATE:
            # The worker came back before the grace ran out: the job is HEALTHY again, and
            # that is an event (LATE was one).
            back = await self._change(
                job_id,
                sources,
                [change, HealthChange(health=JobHealth.HEALTHY)],
                JobTransitions.HEARTBEAT.kind,
                actor,
                fence=fence,
                health=JobHealth.LATE,
            )
            if back is not None:
                return back
        # A plain heartbeat is no event (see the lifecycle row): written as it is, like a
        # metric point, even while another change's event is pending.
        job = await self._change(job_id, sources, [change], None, actor, fence=fence)
        if job is None:
            current = await self._require(job_id)
            fence.refuse(current)
            raise InvalidTransitionError(
                RESOURCE,
                job_id,
                current.status.value,
                None,
                f"{RESOURCE} {job_id!r} is {current.status.value}: heartbeats are only "
                "taken while it is RUNNING",
            )
        return job

    async def mark_late(self, job: TrainingJob, now: datetime) -> TrainingJob | None:
        """The sweep: ``job``'s lease lapsed before ``now``, so it is LATE (an event); None
        if it changed meanwhile (a heartbeat came, or another sweep was first)."""
        return await self._change(
            job.job_id,
            JobTransitions.MARK_LATE.sources,
            [HealthChange(health=JobHealth.LATE)],
            JobTransitions.MARK_LATE.kind,
            SWEEP_ACTOR,
            lease_lapsed_before=now,
            health=JobHealth.HEALTHY,
        )

    async def lose(self, job: TrainingJob, lapsed_before: datetime) -> TrainingJob | None:
        """The sweep: ``job`` is LATE and its lease lapsed before ``lapsed_before`` (now less
        the grace): it fails with HEARTBEAT_LOST and its lease ends, so its worker's writes
        get LeaseLostError. None if it changed meanwhile (a heartbeat, a final status)."""
        last = job.last_heartbeat_at.isoformat() if job.last_heartbeat_at else "never"
        reason = f"no heartbeat from worker {job.worker_id or '(unnamed)'} since {last}"
        row = JobTransitions.LOSE
        lost = await self._change(
            job.job_id,
            row.sources,
            lambda at: [
                Move(transition=row, at=at),
                HealthChange(health=JobHealth.LOST),
                FailureReason(reason=reason, kind=FailureKind.HEARTBEAT_LOST),
                *_retry_mark(job, FailureKind.HEARTBEAT_LOST, at),
            ],
            row.kind,
            SWEEP_ACTOR,
            previous=TrainingStatus.RUNNING,
            lease_lapsed_before=lapsed_before,
            health=JobHealth.LATE,
        )
        return lost

    async def time_out(self, job: TrainingJob, now: datetime) -> TrainingJob | None:
        """The sweep: ``job`` ran past its ``max_runtime_seconds`` by ``now``: it fails with
        TIMED_OUT and its lease ends. None if it is no longer RUNNING (a job runs once: a
        retry is another job) or has no limit."""
        limit = job.max_runtime_seconds
        if limit is None or job.started_date is None:
            return None
        if job.started_date + timedelta(seconds=limit) > now:
            return None
        row = JobTransitions.TIME_OUT
        reason = f"ran longer than its maxRuntimeSeconds ({limit} s)"
        timed_out = await self._change(
            job.job_id,
            row.sources,
            lambda at: [
                Move(transition=row, at=at),
                FailureReason(reason=reason, kind=FailureKind.TIMED_OUT),
                LeaseEnd(),
                *_retry_mark(job, FailureKind.TIMED_OUT, at),
            ],
            row.kind,
            SWEEP_ACTOR,
            previous=TrainingStatus.RUNNING,
        )
        return timed_out

    async def running_with_max_runtime(self, limit: int) -> list[TrainingJob]:
        return await self._jobs.running_with_max_runtime(limit)

    async def set_logs_url(
        self, job_id: str, logs_url: str, *, actor: str | None = None
    ) -> TrainingJob:
        """Where the logs are; allowed in every status (logs are often uploaded at the end)."""
        logs_url = validation.checked(text.check_url, logs_url.strip(), "logsUrl")
        job = await self._change(
            job_id,
            JobTransitions.SET_LOGS_URL.sources,
            [LogsUrl(logs_url=logs_url)],
            JobTransitions.SET_LOGS_URL.kind,
            actor,
        )
        if job is None:
            raise NotFoundError(RESOURCE, job_id, field="jobId")
        return job

    # Helpers ---------------------------------------------------------------------------

    async def _move(
        self,
        job_id: str,
        transition: Transition[TrainingStatus],
        actor: str | None,
        also: Changes = (),
        *,
        fence: Fence | None = None,
    ) -> TrainingJob:
        """``transition`` (with the changes ``also`` made by the same update) and its event;
        with a ``fence``, only under the worker's lease."""
        target = transition.target
        assert target is not None

        def changes(at: datetime) -> list[Change]:
            more = also(at) if callable(also) else also
            return [Move(transition=transition, at=at), *more]

        # One atomic conditional update per allowed source status, so the event knows exactly
        # which status the job left, and two callers can never both make the move.
        for source in sorted(transition.sources):
            job = await self._change(
                job_id, {source}, changes, transition.kind, actor, previous=source, fence=fence
            )
            if job is not None:
                return job
        current = await self._require(job_id)
        if fence is not None:
            fence.refuse(current)
        raise InvalidTransitionError(RESOURCE, job_id, current.status.value, target.value)

    async def _change(
        self,
        job_id: str,
        sources: Collection[TrainingStatus],
        changes: Changes,
        kind: ChangeKind | None,
        actor: str | None,
        *,
        previous: TrainingStatus | None = None,
        fence: Fence | None = None,
        lease_lapsed_before: datetime | None = None,
        health: JobHealth | None = None,
        cancel_requested: bool | None = None,
    ) -> TrainingJob | None:
        """``changes`` (or the changes made at a time) if the job meets the conditions (see
        ``_update``), written with their event (``kind``) pending in the same write (the
        outbox: ``services.outbox``), then the event relayed to the log; None if a condition
        failed. ``previous``: the status a move leaves (None: a change that keeps the status).
        A change still pending from someone else is relayed first, so the job's events keep
        the order of its changes. ``kind`` None: a change no one is told of (a heartbeat, the
        sweep's marks), written without an event."""
        for _ in range(MAX_SETTLE_ATTEMPTS):
            pending = (
                None
                if kind is None
                else new_pending(
                    kind,
                    None if previous is None else previous.value,
                    actor,
                    keeps_status=previous is None,
                )
            )
            at = utc_now() if pending is None else pending.occurred_at
            made = changes(at) if callable(changes) else changes
            try:
                job = await self._update(
                    job_id,
                    sources,
                    made,
                    fence,
                    lease_lapsed_before=lease_lapsed_before,
                    health=health,
                    cancel_requested=cancel_requested,
                    pending=pending,
                )
            except RecordBusy:
                await self._outbox.settle_job(job_id)
                continue
            if job is not None and pending is not None:
                await self._outbox.publish_job(job, pending)
            return job
        raise ConflictError(
            f"{RESOURCE} {job_id!r} is being changed by too many requests at once; retry",
            field="jobId",
        )

    async def _update(
        self,
        job_id: str,
        sources: Collection[TrainingStatus],
        changes: Sequence[Change],
        fence: Fence | None = None,
        *,
        lease_lapsed_before: datetime | None = None,
        health: JobHealth | None = None,
        cancel_requested: bool | None = None,
        pending: PendingChange | None = None,
    ) -> TrainingJob | None:
        """``update``, with a merge that would take the *stored* metrics over their limit (not
        only each call's) as the client's ValidationError. A job may hold MAX_KEYS_PER_JOB (1,000:
        its series keys are its metrics keys too)."""
        try:
            return await self._jobs.update(
                job_id,
                sources,
                changes,
                lease_token_hash=None if fence is None else fence.token_hash,
                unclaimed_only=fence is not None and fence.token_hash is None,
                lease_lapsed_before=lease_lapsed_before,
                health=health,
                cancel_requested=cancel_requested,
                pending=pending,
                logged_event_id=self._outbox.logged_job_events.get(job_id),
            )
        except MergeLimitExceeded as error:
            raise ValidationError(
                "metrics",
                f"{RESOURCE} {job_id!r} has {error.stored} metrics; with these it would have "
                f"{error.merged}, over the limit of {error.limit} per job (nothing was written)",
                rule=ValidationRule.max_items,
            ) from None

    async def _require(self, job_id: str) -> TrainingJob:
        job = await self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(RESOURCE, job_id, field="jobId")
        return job


def _retry_mark(job: TrainingJob, kind: FailureKind, at: datetime) -> list[Change]:
    """The mark that has the sweep create the next attempt after the backoff, if ``job``'s
    retry policy covers a failure of ``kind`` and attempts are left; written with the failure
    itself (one write, its event in it: the outbox), so no crash can separate the two."""
    if kind not in job.retry_on or job.attempt >= job.retry_max_attempts:
        return []
    return [RetryScheduled(due=at + timedelta(seconds=job.retry_backoff_seconds))]


def _leased(job: TrainingJob, lease: GrantedLease) -> LeasedTrainingJob:
    return LeasedTrainingJob.model_construct(**dict(job), granted_lease_token=lease.token)


@dataclass(frozen=True)
class RetryPolicy:
    """``retryPolicy`` at creation: attempts in all (first included), the failure kinds that
    are retried automatically, and the pause before each next attempt."""

    max_attempts: int
    retry_on: tuple[FailureKind, ...]
    backoff_seconds: float = 0.0


def _retry_fields(policy: RetryPolicy | None) -> dict[str, Any]:
    if policy is None:
        return {}
    if not 1 <= policy.max_attempts <= 20:
        rule = ValidationRule.min if policy.max_attempts < 1 else ValidationRule.max
        raise ValidationError("retryPolicy.maxAttempts", "must be 1-20", rule=rule)
    if not 0 <= policy.backoff_seconds <= 86400:
        rule = ValidationRule.min if policy.backoff_seconds < 0 else ValidationRule.max
        raise ValidationError("retryPolicy.backoffSeconds", "must be 0-86400", rule=rule)
    return {
        "retry_max_attempts": policy.max_attempts,
        "retry_on": sorted(set(policy.retry_on)),
        "retry_backoff_seconds": float(policy.backoff_seconds),
    }


#: The longest maxRuntimeSeconds: 30 days.
MAX_RUNTIME_SECONDS = 30 * 86400


def _max_runtime(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValidationError("maxRuntimeSeconds", "must be at least 1", rule=ValidationRule.min)
    if value is not None and value > MAX_RUNTIME_SECONDS:
        raise ValidationError(
            "maxRuntimeSeconds",
            f"must be at most {MAX_RUNTIME_SECONDS} (30 days)",
            rule=ValidationRule.max,
        )
    return value


def _lease_seconds(value: int | None) -> int:
    if value is None:
        return DEFAULT_LEASE_SECONDS
    if value < MIN_LEASE_SECONDS:
        raise ValidationError(
            "leaseSeconds", f"must be at least {MIN_LEASE_SECONDS}", rule=ValidationRule.min
        )
    if value > MAX_LEASE_SECONDS:
        raise ValidationError(
            "leaseSeconds", f"must be at most {MAX_LEASE_SECONDS}", rule=ValidationRule.max
        )
    return value


def _worker_id(value: str | None, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise ValidationError("workerId", "is required", rule=ValidationRule.required)
        return None
    return validation.checked(text.check_id, value, "workerId")


def _refuse_retired(model_id: str, status: ModelStatus) -> None:
    """An ARCHIVED version is retired for good (it can never be deployed again), so training
    it is refused rather than accepted without a word."""
    if status is ModelStatus.ARCHIVED:
        raise ConflictError(
            f"ModelVersion {model_id!r} is archived (retired for good): training jobs can "
            "only be created for development, testing or production versions",
            field="modelId",
        )
