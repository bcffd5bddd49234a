"""Mutations of the model registry: one per lifecycle transition."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from graphql_api.context import Info
from graphql_api.domain.enums import ModelStatus as DomainModelStatus
from graphql_api.types.enums import ModelStatus
from graphql_api.types.inputs import ModelVersionResult, RegisterModelVersionInput
from resolvers.results import result_of


@strawberry.type
class RegistryMutation:
    @strawberry.mutation(
        description="Register a new version (status development, createdDate now). Errors: "
        "ValidationError, ConflictError (modelId or modelName+version taken)."
    )
    async def register_model_version(
        self, info: Info, input: RegisterModelVersionInput
    ) -> ModelVersionResult:
        return await result_of(
            info.context.services.registry.register(
                model_name=input.model_name,
                version=input.version,
                model_type=input.model_type,
                metrics=input.metrics,  # type: ignore[arg-type]
                model_id=None if input.model_id is None else str(input.model_id),
                actor=info.context.actor,
            )
        )

    @strawberry.mutation(
        description="Move a version one stage: development -> testing -> production. Reaching "
        "production sets deployedDate and archives the model name's previous production "
        "version. Pass `to` to refuse anything but that step (safe to retry: `to: PRODUCTION` "
        "of the version already in production answers it, changing nothing). Errors: "
        "NotFoundError, InvalidTransitionError, ConflictError (a concurrent deployment won)."
    )
    async def promote_model_version(
        self,
        info: Info,
        model_id: strawberry.ID,
        to: Annotated[
            ModelStatus | None,
            strawberry.argument(description="The stage expected after this promotion."),
        ] = None,
    ) -> ModelVersionResult:
        return await result_of(
            info.context.services.registry.promote(
                str(model_id),
                DomainModelStatus(to) if to is not None else None,
                actor=info.context.actor,
            )
        )

    @strawberry.mutation(
        description="Archive a version from development, testing or production (final). "
        "Errors: NotFoundError, InvalidTransitionError."
    )
    async def archive_model_version(
        self, info: Info, model_id: strawberry.ID
    ) -> ModelVersionResult:
        return await result_of(
            info.context.services.registry.archive(str(model_id), actor=info.context.actor)
        )

    @strawberry.mutation(
        description="Merge metrics into a version's metrics (a key replaces its old value); "
        "archived versions are frozen. Errors: NotFoundError, InvalidTransitionError, "
        "ValidationError (rule max_items if the version would then hold more than 256)."
    )
    async def update_model_version_metrics(
        self, info: Info, model_id: strawberry.ID, metrics: JSON
    ) -> ModelVersionResult:
        return await result_of(
            info.context.services.registry.update_metrics(
                str(model_id),
                metrics,
                actor=info.context.actor,  # type: ignore[arg-type]
            )
        )
