"""The GraphQL TrainingJob type, generated from the domain model."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from graphql_api.context import Info
from graphql_api.domain import models
from graphql_api.domain.downsampling import MetricSampling
from graphql_api.domain.enums import FailureKind, TrainingStatus
from graphql_api.domain.events import StoredEvent
from graphql_api.domain.models import ModelVersion
from graphql_api.domain.queries import DEFAULT_PAGE_SIZE
from graphql_api.domain.series import DEFAULT_MAX_POINTS
from graphql_api.loaders import history_page_args, now_or_later
from graphql_api.types import typed
from graphql_api.types.change_event import ChangeEventConnection
from graphql_api.types.metric_series import (
    MetricSeriesType,
    SeriesArguments,
    metric_keys_of,
    metric_series_of,
)
from graphql_api.types.model_version import ModelVersionType


@strawberry.type(description="Why a job failed.")
class TrainingFailure:
    kind: FailureKind | None = strawberry.field(
        description="What kind of failure; null for a job failed before kinds existed."
    )
    message: str = strawberry.field(description="The reason given (equal to failureReason).")
    exit_code: int | None = strawberry.field(
        description="The training process's exit code, when the worker reported one."
    )
    retryable: bool = strawberry.field(
        description="Whether the job's retry policy gives this failure an automatic next attempt."
    )


@strawberry.type(description="The retry policy a job was created with.")
class RetryPolicy:
    max_attempts: int = strawberry.field(description="Attempts in all, the first included.")
    retry_on: list[FailureKind] = strawberry.field(description="The failure kinds retried.")
    backoff_seconds: float = strawberry.field(description="Pause before each next attempt.")


@strawberry.experimental.pydantic.type(
    model=models.TrainingJob, name="TrainingJob", description="An ML training job execution."
)
class TrainingJobType:
    job_id: strawberry.ID = strawberry.field(description="Unique job identifier (primary key).")
    model_id: strawberry.ID = strawberry.field(description="The model version this job trains.")
    status: strawberry.auto
    hyperparameters: JSON = strawberry.field(
        description="Training hyperparameters: any JSON object."
    )
    dataset_id: strawberry.auto
    started_date: strawberry.auto
    completed_date: strawberry.auto
    metrics: JSON = strawberry.field(
        description="Training metrics: an object of metric name to number."
    )
    logs_url: strawberry.auto
    created_date: strawberry.auto
    failure_reason: strawberry.auto
    queue: str = strawberry.field(
        description='The queue workers claim the job from (claimTrainingJob); "default" '
        "unless set at creation."
    )
    worker_id: strawberry.ID | None = strawberry.field(
        description="The worker holding the job's lease (claimTrainingJob, or "
        "startTrainingJob with a workerId); null when no worker claimed it."
    )
    lease_expires_at: strawberry.auto
    last_heartbeat_at: strawberry.auto
    health: strawberry.auto
    max_runtime_seconds: strawberry.auto
    cancel_requested_at: strawberry.auto
    cancel_deadline_at: strawberry.auto
    attempt: int = strawberry.field(description="1 for the first attempt, then 2, 3, ...")
    retry_of: strawberry.ID | None = strawberry.field(
        description="The attempt this job retries; null for a first attempt."
    )

    @typed.field(
        description="Why the job failed; null unless it is FAILED.",
        graphql_type=TrainingFailure | None,
    )
    def failure(self) -> TrainingFailure | None:
        # At run time ``self`` is the domain record (models.TrainingJob).
        if self.status is not TrainingStatus.FAILED:
            return None
        job: models.TrainingJob = self  # type: ignore[assignment]  # the record (see above)
        return TrainingFailure(
            kind=job.failure_kind,
            message=job.failure_reason or "",
            exit_code=job.failure_exit_code,
            retryable=job.failure_retryable,
        )

    @typed.field(
        description="The retry policy; null when the job was created without one.",
        graphql_type=RetryPolicy | None,
    )
    def retry_policy(self) -> RetryPolicy | None:
        job: models.TrainingJob = self  # type: ignore[assignment]  # the record (see failure)
        if job.retry_max_attempts == 1 and not job.retry_on:
            return None
        return RetryPolicy(
            max_attempts=job.retry_max_attempts,
            retry_on=[FailureKind(k) for k in job.retry_on],
            backoff_seconds=job.retry_backoff_seconds,
        )

    @typed.field(
        description="Every attempt of this job's chain, first to last (at most 100: a chain "
        "holds no more). One query per job asking for it.",
        # This very type, which does not exist yet while its body runs.
        graphql_type=list[Annotated["TrainingJobType", strawberry.lazy(__name__)]],
    )
    async def attempts(self, info: Info) -> list[models.TrainingJob]:
        job: models.TrainingJob = self  # type: ignore[assignment]  # the record (see failure)
        return await info.context.services.training.attempts(job)

    @typed.field(
        description="The lease token, in the answer of the mutation that granted the lease "
        "(claimTrainingJob, startTrainingJob) and nowhere else: the worker's later writes "
        "carry it (docs/workers.md). Null in every other answer."
    )
    def lease_token(self) -> str | None:
        # At run time ``self`` is the domain record; only a LeasedTrainingJob has a token.
        token: str | None = getattr(self, "granted_lease_token", None)
        return token

    # Not async: when a list field primed the loader, the value is returned at once
    # (see resolvers/prefetch.py); otherwise the pending load is returned for GraphQL to await.
    @typed.field(
        description="The model version this job trains (batched per request).",
        graphql_type=ModelVersionType | None,
    )
    def model_version(self, info: Info) -> ModelVersion | Awaitable[ModelVersion | None] | None:
        return now_or_later(info.context.loaders.model_version, str(self.model_id))

    @typed.field(
        description="The model versions registered with this job as their source "
        "(sourceJobId), newest first: all of them (a job produces at most 100); batched "
        "per request.",
        graphql_type=list[ModelVersionType],
    )
    async def produced_model_versions(self, info: Info) -> list[ModelVersion]:
        return await info.context.loaders.produced_model_versions.load(str(self.job_id))

    @typed.field(
        description="The job's recorded changes, oldest first, a page at a time (batched "
        "across a page of jobs). Page on with `after: pageInfo.endCursor` while "
        "`pageInfo.hasNextPage`; an edge's cursor also starts a subscription right after it.",
        graphql_type=ChangeEventConnection,
    )
    def history(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description="Page size, at most 100.")
        ] = DEFAULT_PAGE_SIZE,
        after: Annotated[
            str | None,
            strawberry.argument(description="Start after this change (an edge's cursor)."),
        ] = None,
    ) -> ChangeEventConnection | Awaitable[ChangeEventConnection]:
        after_seq, page_size = history_page_args(first, after)
        loaders = info.context.loaders
        job_id = str(self.job_id)

        async def count_all() -> int:
            return await loaders.history_count.load(job_id)

        # Not async: a page primed by the list field (resolvers/prefetch.py) costs no await.
        found = now_or_later(loaders.history_page((after_seq, page_size)), job_id)
        if isinstance(found, list):
            return ChangeEventConnection.of(found, page_size, count_all)

        async def later(pending: Awaitable[list[StoredEvent]]) -> ChangeEventConnection:
            return ChangeEventConnection.of(await pending, page_size, count_all)

        return later(found)

    @typed.field(description="Keys of the job's metric series, sorted (batched per request).")
    async def metric_keys(self, info: Info) -> list[str]:
        return await metric_keys_of(info, str(self.job_id))

    @typed.field(
        description="The job's metric series over a step range, each downsampled to at most "
        "maxPoints (batched: the series of every job in a selection cost two database round "
        "trips). A requested key with no points comes back with totalPoints 0. "
        "docs/metrics.md.",
    )
    async def metric_series(
        self,
        info: Info,
        keys: SeriesArguments.Keys = None,
        from_step: SeriesArguments.FromStep = None,
        to_step: SeriesArguments.ToStep = None,
        max_points: SeriesArguments.MaxPoints = DEFAULT_MAX_POINTS,
        sampling: SeriesArguments.Sampling = MetricSampling.MIN_MAX,
    ) -> list[MetricSeriesType]:
        return await metric_series_of(
            info, str(self.job_id), keys, from_step, to_step, max_points, sampling
        )
