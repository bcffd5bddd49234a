"""Mutations of training jobs: one per lifecycle transition, plus progress reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from graphql_api.context import Info
from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.domain.models import TrainingJob
from graphql_api.types import typed
from graphql_api.types.errors import MutationError, to_graphql
from graphql_api.types.inputs import CreateTrainingJobInput, TrainingJobResult
from graphql_api.types.metric_series import MetricPointInput, MetricSeriesInput
from resolvers.results import result_of


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
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="PENDING -> RUNNING; sets startedDate.",
        graphql_type=TrainingJobResult,
    )
    async def start_training_job(
        self, info: Info, job_id: strawberry.ID
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.start(str(job_id), actor=info.context.actor)
        )

    @typed.mutation(
        description="RUNNING -> COMPLETED; merges the final metrics, sets completedDate.",
        graphql_type=TrainingJobResult,
    )
    async def complete_training_job(
        self, info: Info, job_id: strawberry.ID, metrics: JSON | None = None
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.complete(
                str(job_id),
                # Any JSON value: the service validates it (ValidationError unless name -> number).
                cast("Mapping[str, float] | None", metrics),
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="RUNNING -> FAILED with a reason; sets completedDate.",
        graphql_type=TrainingJobResult,
    )
    async def fail_training_job(
        self, info: Info, job_id: strawberry.ID, reason: str
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.fail(str(job_id), reason, actor=info.context.actor)
        )

    @typed.mutation(
        description="PENDING or RUNNING -> CANCELLED; sets completedDate.",
        graphql_type=TrainingJobResult,
    )
    async def cancel_training_job(
        self, info: Info, job_id: strawberry.ID
    ) -> TrainingJob | MutationError:
        return await result_of(
            info.context.services.training.cancel(str(job_id), actor=info.context.actor)
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
            return await result_of(training.series.report_series(str(job_id), columns))
        if points is not None:
            # The points arrive as coerced mappings (MetricPointInput's from_input).
            coerced = cast("list[Mapping[str, Any]]", points)
            return await result_of(training.series.report_points(str(job_id), coerced))
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
                actor=info.context.actor,
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
