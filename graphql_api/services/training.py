"""MLTrainingService: creating training jobs and driving them through their lifecycle."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from graphql_api.domain import text, validation
from graphql_api.domain.enums import ModelStatus, TrainingStatus
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
from graphql_api.domain.lifecycle import JobTransitions, Transition
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.queries import (
    MetricOrder,
    Page,
    PageRequest,
    TrainingJobFilter,
    TrainingJobOrder,
)
from graphql_api.domain.series import MAX_KEYS_PER_JOB
from graphql_api.domain.updates import Change, FailureReason, LogsUrl, MetricsMerge, Move
from graphql_api.domain.values import utc_now
from graphql_api.services.outbox import Outbox, new_pending
from graphql_api.storage.base import MergeLimitExceeded, PendingChange, RecordBusy, Storage

RESOURCE = "TrainingJob"
#: Pending changes of others one change waits for before it gives up. Concurrent changes of
#: one record take turns (one lands per turn, each waiting for the last one's event): 10 left
#: some of 20 concurrent metric reports of one job with a ConflictError on DocumentDB.
MAX_SETTLE_ATTEMPTS = 100


class MLTrainingService:
    def __init__(self, storage: Storage) -> None:
        self._jobs = storage.training_jobs
        self._versions = storage.model_versions
        self._events = storage.events
        self._outbox = Outbox(storage)

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
        actor: str | None = None,
    ) -> TrainingJob:
        """A PENDING job for an existing model version."""
        job = validation.build(
            TrainingJob,
            job_id=job_id if job_id is not None else new_id(),
            model_id=model_id,
            dataset_id=dataset_id,
            hyperparameters=hyperparameters if hyperparameters is not None else {},
            logs_url=logs_url,
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

    async def start(self, job_id: str, *, actor: str | None = None) -> TrainingJob:
        return await self._move(job_id, JobTransitions.START, actor)

    async def complete(
        self,
        job_id: str,
        metrics: Mapping[str, float] | None = None,
        *,
        actor: str | None = None,
    ) -> TrainingJob:
        """RUNNING -> COMPLETED, merging the final ``metrics`` into those reported so far."""
        final = validation.metrics(metrics if metrics is not None else {})
        return await self._move(
            job_id,
            JobTransitions.COMPLETE,
            actor,
            [MetricsMerge(metrics=final, limit=MAX_KEYS_PER_JOB)] if final else [],
        )

    async def fail(self, job_id: str, reason: str, *, actor: str | None = None) -> TrainingJob:
        reason = validation.checked(text.check_text, reason.strip(), "reason")
        return await self._move(job_id, JobTransitions.FAIL, actor, [FailureReason(reason=reason)])

    async def cancel(self, job_id: str, *, actor: str | None = None) -> TrainingJob:
        return await self._move(job_id, JobTransitions.CANCEL, actor)

    async def report_metrics(
        self, job_id: str, metrics: Mapping[str, float], *, actor: str | None = None
    ) -> TrainingJob:
        """Merge progress metrics into a RUNNING job (later values of a key replace earlier)."""
        checked = validation.metrics(metrics)
        if not checked:
            raise ValidationError(
                "metrics", "must name at least one metric", rule=ValidationRule.min_length
            )
        job = await self._change(
            job_id,
            JobTransitions.REPORT_METRICS.sources,
            [MetricsMerge(metrics=checked, limit=MAX_KEYS_PER_JOB)],
            JobTransitions.REPORT_METRICS.kind,
            actor,
        )
        if job is None:
            current = await self._require(job_id)
            raise InvalidTransitionError(
                RESOURCE,
                job_id,
                current.status.value,
                None,
                f"{RESOURCE} {job_id!r} is {current.status.value}: metrics can only be "
                "reported while it is RUNNING",
            )
        return job

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
        also: Sequence[Change] = (),
    ) -> TrainingJob:
        """``transition`` (with the changes ``also`` made by the same update) and its event."""
        target = transition.target
        assert target is not None
        # One atomic conditional update per allowed source status, so the event knows exactly
        # which status the job left, and two callers can never both make the move.
        for source in sorted(transition.sources):
            job = await self._change(
                job_id,
                {source},
                lambda at: [Move(transition=transition, at=at), *also],
                transition.kind,
                actor,
                previous=source,
            )
            if job is not None:
                return job
        current = await self._require(job_id)
        raise InvalidTransitionError(RESOURCE, job_id, current.status.value, target.value)

    async def _change(
        self,
        job_id: str,
        sources: Collection[TrainingStatus],
        changes: Sequence[Change] | Callable[[datetime], Sequence[Change]],
        kind: ChangeKind,
        actor: str | None,
        *,
        previous: TrainingStatus | None = None,
    ) -> TrainingJob | None:
        """``changes`` (or the changes made at a time) if the status is one of ``sources``,
        written with their event pending (one write: ``services.outbox``), then the event
        relayed to the log; None if the status did not match. ``previous``: the status a move
        leaves (None: a change that keeps the status). A change still pending from someone
        else is relayed first, so the job's events keep the order of its changes."""
        for _ in range(MAX_SETTLE_ATTEMPTS):
            pending = new_pending(
                kind,
                None if previous is None else previous.value,
                actor,
                keeps_status=previous is None,
            )
            made = changes(pending.occurred_at) if callable(changes) else changes
            try:
                job = await self._update(job_id, sources, made, pending)
            except RecordBusy:
                await self._outbox.settle_job(job_id)
                continue
            if job is not None:
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
        pending: PendingChange,
    ) -> TrainingJob | None:
        """``update``, with a merge that would take the *stored* metrics over their limit (not
        only each call's) as the client's ValidationError. A job may hold MAX_KEYS_PER_JOB (1,000:
        its series keys are its metrics keys too)."""
        try:
            return await self._jobs.update(job_id, sources, changes, pending=pending)
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


def _refuse_retired(model_id: str, status: ModelStatus) -> None:
    """An ARCHIVED version is retired for good (it can never be deployed again), so training
    it is refused rather than accepted without a word."""
    if status is ModelStatus.ARCHIVED:
        raise ConflictError(
            f"ModelVersion {model_id!r} is archived (retired for good): training jobs can "
            "only be created for development, testing or production versions",
            field="modelId",
        )
