"""The GraphQL TrainingJob type, generated from the domain model."""

from __future__ import annotations

from collections.abc import Awaitable

import strawberry
from strawberry.scalars import JSON

from graphql_api.context import Info
from graphql_api.domain import models
from graphql_api.domain.events import ChangeEvent
from graphql_api.domain.models import ModelVersion
from graphql_api.loaders import now_or_later
from graphql_api.types.change_event import ChangeEventType
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
    @strawberry.field(
        description="The model version this job trains (batched per request).",
        graphql_type=ModelVersionType | None,
    )
    def model_version(self, info: Info) -> ModelVersion | Awaitable[ModelVersion | None] | None:
        return now_or_later(info.context.loaders.model_version, str(self.model_id))

    @strawberry.field(
        description="The job's recorded changes, oldest first.",
        graphql_type=list[ChangeEventType],
    )
    def history(self, info: Info) -> list[ChangeEvent] | Awaitable[list[ChangeEvent]]:
        return now_or_later(info.context.loaders.history, str(self.job_id))
