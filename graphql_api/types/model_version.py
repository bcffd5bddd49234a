"""The GraphQL ModelVersion type, generated from the domain model."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from graphql_api.context import Info
from graphql_api.domain import models
from graphql_api.domain.queries import DEFAULT_PAGE_SIZE, PageRequest, TrainingJobOrder
from graphql_api.loaders import history_page_args, now_or_later
from graphql_api.types import typed
from graphql_api.types.filters import TrainingJobFilter, training_job_filter
from graphql_api.types.model_history import ModelVersionChangeConnection
from graphql_api.types.pagination import Connection
from graphql_api.types.tags import TagType

if TYPE_CHECKING:
    from graphql_api.types.training_job import TrainingJobType

TrainingJobRef = Annotated["TrainingJobType", strawberry.lazy("graphql_api.types.training_job")]


@strawberry.experimental.pydantic.type(
    model=models.ModelVersion, name="ModelVersion", description="A versioned ML model record."
)
class ModelVersionType:
    model_id: strawberry.ID = strawberry.field(description="Model identifier (primary key).")
    model_name: strawberry.auto
    version: strawberry.auto
    model_type: strawberry.auto
    status: strawberry.auto
    metrics: JSON = strawberry.field(
        description="Performance metrics: an object of metric name to number."
    )
    created_date: strawberry.auto
    deployed_date: strawberry.auto
    artifact_uri: strawberry.auto
    artifact_digest: strawberry.auto
    description: strawberry.auto
    tags: list[TagType] = strawberry.field(
        description="Key/value labels (at most 50, each key once); empty if none."
    )
    created_by: strawberry.auto
    source_job_id: strawberry.ID | None = strawberry.field(
        description="The COMPLETED training job that produced this version, if registered with one."
    )

    @typed.field(
        description="The version's recorded changes (who, when, from -> to, why), oldest "
        "first, a page at a time (batched across a page of versions). Each cursor is also an "
        "`after` for modelVersionUpdates.",
        graphql_type=ModelVersionChangeConnection,
    )
    async def history(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description="Page size, at most 100.")
        ] = DEFAULT_PAGE_SIZE,
        after: Annotated[
            str | None,
            strawberry.argument(description="Start after this change (an edge's cursor)."),
        ] = None,
    ) -> ModelVersionChangeConnection:
        after_seq, page_size = history_page_args(first, after)
        loaders = info.context.loaders
        model_id = str(self.model_id)

        async def count_all() -> int:
            return await loaders.version_history_count.load(model_id)

        found = await loaders.version_history_page((after_seq, page_size)).load(model_id)
        return ModelVersionChangeConnection.of(found, page_size, count_all)

    @typed.field(
        description="The aliases that name this version, sorted; `production` when it is the "
        "version in production (batched per model name)."
    )
    async def aliases(self, info: Info) -> list[str]:
        named = await info.context.loaders.aliases_of_model.load(self.model_name)
        return sorted(alias for alias, model_id in named.items() if model_id == self.model_id)

    # Not async: a primed loader answers at once (see TrainingJob.modelVersion).
    @typed.field(
        description="The training job that produced this version (batched per request).",
        graphql_type=TrainingJobRef | None,
    )
    def source_job(
        self, info: Info
    ) -> models.TrainingJob | Awaitable[models.TrainingJob | None] | None:
        if self.source_job_id is None:
            return None
        return now_or_later(info.context.loaders.training_job, str(self.source_job_id))

    @typed.field(
        description="Training jobs of this version, newest first by default.",
        graphql_type=Connection[TrainingJobRef],
    )
    async def training_jobs(
        self,
        info: Info,
        filter: TrainingJobFilter | None = None,
        order_by: TrainingJobOrder = TrainingJobOrder.CREATED_DATE_DESC,
        first: int = 10,
    ) -> Connection[models.TrainingJob]:
        page = PageRequest(first=first)
        where = training_job_filter(filter)
        loaders = info.context.loaders
        model_id = str(self.model_id)
        jobs = await loaders.jobs_of_model((where, order_by, page.first)).load(model_id)

        async def count() -> int:
            return await loaders.job_count_of_model(where).load(model_id)

        return Connection.of(jobs, count)
