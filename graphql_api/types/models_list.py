"""``models``: one entry per model name, with what a registry viewer shows first."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.context import Info
from graphql_api.domain.models import ModelVersion
from graphql_api.types import typed
from graphql_api.types.model_version import ModelVersionType


@strawberry.input(description="Which models to list.")
class ModelFilter:
    name_contains: str | None = strawberry.field(
        default=None,
        description="Only names containing this, ignoring case (a scan of the names: one "
        "document per model name).",
    )


@strawberry.type(description="An alias of a model and the version it names.")
class ModelAlias:
    alias: str = strawberry.field(description="The alias (`production` included).")
    model_id: strawberry.Private[str]

    @typed.field(
        description="The version it names (batched).", graphql_type=ModelVersionType | None
    )
    async def model_version(self, info: Info) -> ModelVersion | None:
        return await info.context.loaders.model_version.load(self.model_id)


@strawberry.type(name="Model", description="A model: every version registered under one name.")
class ModelEntry:
    name: str = strawberry.field(description="The model name.")

    @typed.field(
        description="Its version of highest SemVer precedence, whatever its status.",
        graphql_type=ModelVersionType | None,
    )
    async def latest_version(self, info: Info) -> ModelVersion | None:
        return await info.context.loaders.latest_of_model.load(self.name)

    @typed.field(
        description="Its version in production (as productionModelVersion), or null.",
        graphql_type=ModelVersionType | None,
    )
    async def production_version(self, info: Info) -> ModelVersion | None:
        return await info.context.loaders.production_of_model.load(self.name)

    @typed.field(description="Its aliases, sorted, `production` included when deployed.")
    async def aliases(self, info: Info) -> list[ModelAlias]:
        named = await info.context.loaders.aliases_of_model.load(self.name)
        return [ModelAlias(alias=a, model_id=named[a]) for a in sorted(named)]

    @typed.field(description="How many versions it has (archived included).")
    async def version_count(self, info: Info) -> int:
        return (await info.context.loaders.model_stats.load(self.name))[0]

    @typed.field(description="When one of its versions last reached production, or null.")
    async def last_deployed_date(self, info: Info) -> datetime | None:
        return (await info.context.loaders.model_stats.load(self.name))[1]
