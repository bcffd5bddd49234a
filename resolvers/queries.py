"""Root query fields."""

from __future__ import annotations

from typing import Annotated, TypeVar

import strawberry

from graphql_api.auth.scope import narrowed
from graphql_api.context import Info
from graphql_api.domain.enums import ModelStatus as DomainModelStatus
from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import MetricOrder, Page, PageRequest
from graphql_api.loaders import history_page_args
from graphql_api.types import typed
from graphql_api.types.enums import ModelStatus, ModelVersionOrder, TrainingJobOrder
from graphql_api.types.filters import (
    ModelVersionFilter,
    TrainingJobFilter,
    model_version_filter,
    training_job_filter,
)
from graphql_api.types.model_history import ModelVersionChangeConnection
from graphql_api.types.model_version import ModelVersionType
from graphql_api.types.models_list import ModelEntry, ModelFilter
from graphql_api.types.pagination import Connection
from graphql_api.types.search import MetricOrderInput, metric_order
from graphql_api.types.training_job import TrainingJobType
from resolvers.prefetch import prime_job_relations

FIRST_HELP = "Page size: at most 100 (default 20)."
AFTER_HELP = "Return items after this cursor (a previous page's pageInfo.endCursor)."
T = TypeVar("T")
ORDER_BY_METRIC_HELP = (
    "Order by this metric instead of orderBy (records without it last, then by id). Give "
    "orderBy or orderByMetric, not both."
)


def _ordering(
    order_by: T | None, by_metric: MetricOrderInput | None, default: T
) -> T | MetricOrder:
    """The ordering asked for: orderBy, orderByMetric, or the default; both is an error."""
    if by_metric is not None and order_by is not None:
        raise ValidationError(
            "orderByMetric", "give orderBy or orderByMetric, not both", rule=ValidationRule.range
        )
    return metric_order(by_metric) or (default if order_by is None else order_by)


@strawberry.type(description="Reads for dashboards, the registry viewer and inference services.")
class Query:
    @typed.field(
        description="One model version by id, or null if there is none.",
        graphql_type=ModelVersionType | None,
    )
    async def model_version(self, info: Info, model_id: strawberry.ID) -> ModelVersion | None:
        return await info.context.loaders.model_version.load(str(model_id))

    @typed.field(
        description="One training job by id, or null if there is none.",
        graphql_type=TrainingJobType | None,
    )
    async def training_job(self, info: Info, job_id: strawberry.ID) -> TrainingJob | None:
        return await info.context.services.training.get(str(job_id))

    @typed.field(
        description="Model versions, filtered, ordered and keyset-paginated.",
        graphql_type=Connection[ModelVersionType],
    )
    async def model_versions(
        self,
        info: Info,
        filter: ModelVersionFilter | None = None,
        order_by: Annotated[
            ModelVersionOrder | None,
            strawberry.argument(description="The ordering (default CREATED_DATE_DESC)."),
        ] = None,
        order_by_metric: Annotated[
            MetricOrderInput | None, strawberry.argument(description=ORDER_BY_METRIC_HELP)
        ] = None,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> Connection[ModelVersion]:
        registry = info.context.services.registry
        where = await narrowed(info.context, model_version_filter(filter))
        order = _ordering(order_by, order_by_metric, ModelVersionOrder.CREATED_DATE_DESC)
        page = await registry.find(where, order, PageRequest(first=first, after=after))
        return Connection.of(page, lambda: registry.count(where))

    @typed.field(
        description="Training jobs, filtered, ordered and keyset-paginated.",
        graphql_type=Connection[TrainingJobType],
    )
    async def training_jobs(
        self,
        info: Info,
        filter: TrainingJobFilter | None = None,
        order_by: Annotated[
            TrainingJobOrder | None,
            strawberry.argument(description="The ordering (default CREATED_DATE_DESC)."),
        ] = None,
        order_by_metric: Annotated[
            MetricOrderInput | None, strawberry.argument(description=ORDER_BY_METRIC_HELP)
        ] = None,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> Connection[TrainingJob]:
        training = info.context.services.training
        where = await narrowed(info.context, training_job_filter(filter))
        order = _ordering(order_by, order_by_metric, TrainingJobOrder.CREATED_DATE_DESC)
        page = await training.find(where, order, PageRequest(first=first, after=after))
        await prime_job_relations(info, page.items, "edges", "node")
        return Connection.of(page, lambda: training.count(where))

    @typed.field(
        description="The version of the model in production (at most one), or null. What an "
        "inference service asks. During a deployment it answers the version being replaced "
        "until the new one is in production: never null in between.",
        graphql_type=ModelVersionType | None,
    )
    async def production_model_version(self, info: Info, model_name: str) -> ModelVersion | None:
        return await info.context.services.inference.production_version(model_name)

    @typed.field(
        description="The version an alias of the model names, or null if the alias does not "
        "exist. `production` always names the version in production (as "
        "productionModelVersion: no gap during a deployment).",
        graphql_type=ModelVersionType | None,
    )
    async def model_version_by_alias(
        self, info: Info, model_name: str, alias: str
    ) -> ModelVersion | None:
        return await info.context.services.aliases.by_alias(model_name, alias)

    @typed.field(
        description="Models: one entry per model name, in name order (code points), "
        "keyset-paginated, with its latest and production versions, aliases, number of "
        "versions and last deployment (batched per page).",
        graphql_type=Connection[ModelEntry],
    )
    async def models(
        self,
        info: Info,
        filter: ModelFilter | None = None,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> Connection[ModelEntry]:
        catalog = info.context.services.models
        contains = None if filter is None else filter.name_contains
        page = await catalog.names(contains, PageRequest(first=first, after=after))
        entries = Page([ModelEntry(name=n) for n in page.items], page.cursors, page.has_next_page)
        return Connection.of(entries, lambda: catalog.count(contains))

    @typed.field(
        description="The highest version of the model (SemVer precedence) that a range "
        "matches, with npm's range semantics: caret (^1.4 = >=1.4.0 <2.0.0), tilde (~1.4.2 = "
        ">=1.4.2 <1.5.0), comparisons (>=1.2.0 <2), x-ranges (1.x, *), hyphens (1.2 - 1.4), "
        "|| between alternatives; pre-releases (2.0.0-rc.1) only when a comparator names one "
        "of the same major.minor.patch or with includePrerelease. null if none matches. An "
        "invalid range is a VALIDATION_ERROR (rule semver_range).",
        graphql_type=ModelVersionType | None,
    )
    async def resolve_model_version(
        self,
        info: Info,
        model_name: str,
        range: Annotated[str, strawberry.argument(description="An npm range, e.g. ^1.4.")],
        statuses: Annotated[
            list[ModelStatus] | None,
            strawberry.argument(
                description="Only versions in these statuses (default: all but ARCHIVED)."
            ),
        ] = None,
        include_prerelease: Annotated[
            bool, strawberry.argument(description="Let pre-release versions match too.")
        ] = False,
    ) -> ModelVersion | None:
        return await info.context.services.resolver.resolve(
            model_name,
            range,
            None if statuses is None else [DomainModelStatus(s) for s in statuses],
            include_prerelease,
        )

    @typed.field(
        description="Everything recorded for a model name, all versions, oldest first: "
        "registrations, promotions, deployments and rollbacks (with their reason), archives, "
        "alias moves; who and when. Each cursor is also an `after` for modelVersionUpdates.",
        graphql_type=ModelVersionChangeConnection,
    )
    async def model_history(
        self,
        info: Info,
        model_name: str,
        first: Annotated[int, strawberry.argument(description=FIRST_HELP)] = 20,
        after: Annotated[str | None, strawberry.argument(description=AFTER_HELP)] = None,
    ) -> ModelVersionChangeConnection:
        history = info.context.services.history
        after_seq, page_size = history_page_args(first, after)
        found = await history.model_page(model_name, after_seq, page_size)
        return ModelVersionChangeConnection.of(
            found, page_size, lambda: history.model_count(model_name)
        )

    @typed.field(
        description="The model's version of highest SemVer precedence (not string order), "
        "whatever its status, or null.",
        graphql_type=ModelVersionType | None,
    )
    async def latest_model_version(self, info: Info, model_name: str) -> ModelVersion | None:
        return await info.context.services.inference.latest_version(model_name)
