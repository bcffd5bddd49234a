"""The GraphQL TrainingJob type, generated from the domain model."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from graphql_api.context import Info
from graphql_api.domain import models
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

    @strawberry.field(description="The model version this job trains (batched per request).")
    async def model_version(self, info: Info) -> ModelVersionType | None:
        return await info.context.loaders.model_version.load(str(self.model_id))  # type: ignore[return-value]

    @strawberry.field(description="The job's recorded changes, oldest first.")
    async def history(self, info: Info) -> list[ChangeEventType]:
        return await info.context.loaders.history.load(str(self.job_id))  # type: ignore[return-value]
