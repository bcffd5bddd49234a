"""The GraphQL TrainingJob type, generated from the domain model."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from graphql_api.context import Info
from graphql_api.domain import models
from graphql_api.domain.downsampling import MetricSampling
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
