"""Mutations of training jobs: one per lifecycle transition, plus progress reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from graphql_api.auth.scope import claimable_model_ids
from graphql_api.context import Info
from graphql_api.domain.enums import FailureKind
from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.domain.leases import DEFAULT_LEASE_SECONDS, MAX_LEASE_SECONDS
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.values import DEFAULT_QUEUE
from graphql_api.services.training import RetryPolicy
from graphql_api.types import typed
from graphql_api.types.errors import MutationError, to_graphql
from graphql_api.types.inputs import CreateTrainingJobInput, TrainingJobResult
from graphql_api.types.metric_series import MetricPointInput, MetricSeriesInput
from resolvers.results import result_of

LEASE_SECONDS_DOC = (
    f"How long the lease lasts without a heartbeat: 1-{MAX_LEASE_SECONDS} s, "
    f"{DEFAULT_LEASE_SECONDS} when omitted."
)
LEASE_TOKEN_DOC = (
    "The lease token of the claim (or start). Required when a worker holds the job "
    "(workerId set); a token that is not the job's current lease is a LeaseLostError."
)


@strawberry.type
class TrainingMutation:
    @typed.mutation(
        description="Create a PENDING job for an existing model version. Errors: "
        "NotFoundError (modelId), ValidationError, ConflictError (jobId taken, or modelId "
        "is ARCHIVED).",
        graphql_type=TrainingJobResult,
    )
    async def create_training_job(
        self, info: Info, input: CreateTrainingJobInput
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.create(
                model_id=str(input.model_id),
                dataset_id=input.dataset_id,
                # Any JSON value: the service validates it (ValidationError unless an object).
                hyperparameters=cast("Mapping[str, Any] | None", input.hyperparameters),
                job_id=None if input.job_id is None else str(input.job_id),
                logs_url=input.logs_url,
                queue=input.queue,
                max_runtime_seconds=input.max_runtime_seconds,
                retry_policy=None
                if input.retry_policy is None
                else RetryPolicy(
                    max_attempts=input.retry_policy.max_attempts,
                    retry_on=tuple(input.retry_policy.retry_on),
                    backoff_seconds=input.retry_policy.backoff_seconds,
                ),
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="PENDING -> RUNNING for a caller that picked the job; sets startedDate and "
        "grants a lease (`leaseToken` in this answer only). With a workerId the job is held "
        "like a claimed one: its writes must carry the token (docs/workers.md).",
        graphql_type=TrainingJobResult,
    )
    async def start_training_job(
        self,
        info: Info,
        job_id: strawberry.ID,
        worker_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="The worker that will run the job."),
        ] = None,
        lease_seconds: Annotated[
            int | None, strawberry.argument(description=LEASE_SECONDS_DOC)
        ] = None,
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.start(
                str(job_id),
                worker_id=None if worker_id is None else str(worker_id),
                lease_seconds=lease_seconds,
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="The oldest PENDING job of the queue, now RUNNING for this worker, with "
        "its lease (`leaseToken` in this answer only); null when the queue has no PENDING "
        "job. Racing workers never get the same job. Errors: ValidationError (queue, "
        "workerId, leaseSeconds), ConflictError (lost too many races in a row: retry).",
        graphql_type=TrainingJobResult | None,
    )
    async def claim_training_job(
        self,
        info: Info,
        worker_id: Annotated[
            strawberry.ID,
            strawberry.argument(description="Who claims: an identifier like jobId."),
        ],
        queue: Annotated[
            str, strawberry.argument(description="The queue to claim from.")
        ] = DEFAULT_QUEUE,
        lease_seconds: Annotated[
            int | None, strawberry.argument(description=LEASE_SECONDS_DOC)
        ] = None,
    ) -> TrainingJob | MutationError | None:
        return await result_of(
            info.context.services.training.claim(
                queue,
                str(worker_id),
                lease_seconds,
                model_ids=await claimable_model_ids(info.context),
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="RUNNING -> COMPLETED; merges the final metrics, sets completedDate.",
        graphql_type=TrainingJobResult,
    )
    async def complete_training_job(
        self,
        info: Info,
        job_id: strawberry.ID,
        metrics: JSON | None = None,
        lease_token: Annotated[str | None, strawberry.argument(description=LEASE_TOKEN_DOC)] = None,
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.complete(
                str(job_id),
                # Any JSON value: the service validates it (ValidationError unless name -> number).
                cast("Mapping[str, float] | None", metrics),
                lease_token=lease_token,
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="RUNNING -> FAILED with a reason; sets completedDate.",
        graphql_type=TrainingJobResult,
    )
    async def fail_training_job(
        self,
        info: Info,
        job_id: strawberry.ID,
        reason: str,
        lease_token: Annotated[str | None, strawberry.argument(description=LEASE_TOKEN_DOC)] = None,
        kind: Annotated[
            FailureKind,
            strawberry.argument(description="What kind of failure (failure.kind)."),
        ] = FailureKind.USER_CODE,
        exit_code: Annotated[
            int | None,
            strawberry.argument(description="The training process's exit code, if any."),
        ] = None,
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.fail(
                str(job_id),
                reason,
                kind=kind,
                exit_code=exit_code,
                lease_token=lease_token,
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="The next attempt of a job that ended (COMPLETED, FAILED or CANCELLED): a "
        "new PENDING job in the same queue with the same hyperparameters, or these. Errors: "
        "InvalidTransitionError (the job has not ended), ConflictError (this attempt exists "
        "already, the chain has 100, or modelId is ARCHIVED), ValidationError, NotFoundError.",
        graphql_type=TrainingJobResult,
    )
    async def retry_training_job(
        self,
        info: Info,
        job_id: strawberry.ID,
        hyperparameters: Annotated[
            JSON | None,
            strawberry.argument(description="Replace the hyperparameters (any JSON object)."),
        ] = None,
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.retry(
                str(job_id),
                # Any JSON value: the service validates it (ValidationError unless an object).
                cast("Mapping[str, Any] | None", hyperparameters),
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="PENDING or RUNNING -> CANCELLED; sets completedDate. With graceSeconds "
        "(0-86400) a RUNNING job is asked to stop instead: cancelRequestedAt and a "
        "CANCEL_REQUESTED event; its worker acknowledges (acknowledgeTrainingJobCancel) or "
        "the server cancels it when the grace runs out (docs/workers.md).",
        graphql_type=TrainingJobResult,
    )
    async def cancel_training_job(
        self,
        info: Info,
        job_id: strawberry.ID,
        grace_seconds: Annotated[
            int | None,
            strawberry.argument(description="Let a RUNNING job's worker stop within this."),
        ] = None,
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.cancel(
                str(job_id), grace_seconds, actor=info.context.actor
            )
        )

    @typed.mutation(
        description="The worker stopped after a graceful cancel: RUNNING -> CANCELLED. Errors: "
        "InvalidTransitionError (no cancel was asked for, or the job ended), LeaseLostError.",
        graphql_type=TrainingJobResult,
    )
    async def acknowledge_training_job_cancel(
        self,
        info: Info,
        job_id: strawberry.ID,
        lease_token: Annotated[str | None, strawberry.argument(description=LEASE_TOKEN_DOC)] = None,
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.acknowledge_cancel(
                str(job_id), lease_token=lease_token, actor=info.context.actor
            )
        )

    @typed.mutation(
        description="Progress of a RUNNING job, in one of two forms. `metrics`: merge latest "
        "values (a key replaces its old value; a change event). `points`: per-step points of "
        "metric series, at most 1,000 per call (a point for a stored (key, step) replaces it, "
        "so a retry never duplicates; `metrics` moves to each key's highest-step value in the "
        "same call; no change event: watch trainingMetricUpdates). `series`: the same points "
        "as columns per key (steps, values, timestamps of equal length), same rules and "
        "limits (1,000 points per call, all keys together), and far cheaper to send: "
        "prefer it. A job holds at most 1,000 "
        "metric keys and 10,000,000 points: ValidationError (rule max_items) past them, "
        "nothing written. InvalidTransitionError unless RUNNING. docs/metrics.md.",
        graphql_type=TrainingJobResult,
    )
    async def report_training_metrics(
        self,
        info: Info,
        job_id: strawberry.ID,
        metrics: JSON | None = None,
        points: list[MetricPointInput] | None = None,
        series: list[MetricSeriesInput] | None = None,
        lease_token: Annotated[str | None, strawberry.argument(description=LEASE_TOKEN_DOC)] = None,
    ) -> TrainingJob | MutationError:
        training = info.context.services
        given = [
            name
            for name, value in (("metrics", metrics), ("points", points), ("series", series))
            if value is not None
        ]
        if len(given) > 1:
            return to_graphql(
                ValidationError(
                    given[0],
                    f"give one of metrics, points or series, not {' and '.join(given)}",
                    rule=ValidationRule.invalid,
                )
            )
        if series is not None:
            # The columns arrive as coerced mappings (MetricSeriesInput's from_input).
            columns = cast("list[Mapping[str, Any]]", series)
            return await result_of(
                training.series.report_series(str(job_id), columns, lease_token=lease_token)
            )
        if points is not None:
            # The points arrive as coerced mappings (MetricPointInput's from_input).
            coerced = cast("list[Mapping[str, Any]]", points)
            return await result_of(
                training.series.report_points(str(job_id), coerced, lease_token=lease_token)
            )
        if metrics is None:
            return to_graphql(
                ValidationError(
                    "metrics", "give metrics, points or series", rule=ValidationRule.required
                )
            )
        return await result_of(
            training.training.report_metrics(
                str(job_id),
                # Any JSON value: the service validates it (ValidationError unless name -> number).
                cast("Mapping[str, float]", metrics),
                lease_token=lease_token,
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="The worker holding the job is alive: its lease runs its full length "
        "again from now (lastHeartbeatAt, leaseExpiresAt). Errors: LeaseLostError (the token "
        "is not the job's lease: stop working on it; nothing changed), "
        "InvalidTransitionError (the job is no longer RUNNING, e.g. cancelled), NotFoundError.",
        graphql_type=TrainingJobResult,
    )
    async def heartbeat_training_job(
        self,
        info: Info,
        job_id: strawberry.ID,
        lease_token: Annotated[
            str, strawberry.argument(description="The lease token of the claim (or start).")
        ],
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.heartbeat(
                str(job_id), lease_token, actor=info.context.actor
            )
        )

    @typed.mutation(
        description="Set where the job's logs are; allowed in every status.",
        graphql_type=TrainingJobResult,
    )
    async def set_training_job_logs_url(
        self, info: Info, job_id: strawberry.ID, logs_url: str
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.set_logs_url(
                str(job_id), logs_url, actor=info.context.actor
            )
        )
