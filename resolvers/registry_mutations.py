"""Mutations of the model registry: one per lifecycle transition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from graphql_api.context import Info
from graphql_api.domain.enums import ModelStatus as DomainModelStatus
from graphql_api.domain.models import ModelVersion
from graphql_api.services.registry_metadata import VersionDetails
from graphql_api.types import typed
from graphql_api.types.enums import ModelStatus
from graphql_api.types.errors import MutationError
from graphql_api.types.inputs import ModelVersionResult, RegisterModelVersionInput
from graphql_api.types.tags import TagInput, tag_pairs
from resolvers.results import result_of


@strawberry.type
class RegistryMutation:
    @typed.mutation(
        description="Register a new version (status development, createdDate now). Errors: "
        "ValidationError, ConflictError (modelId or modelName+version taken).",
        graphql_type=ModelVersionResult,
    )
    async def register_model_version(
        self, info: Info, input: RegisterModelVersionInput
    ) -> ModelVersion | MutationError:
        return await result_of(
            info.context.services.registry.register(
                model_name=input.model_name,
                version=input.version,
                model_type=input.model_type,
                # Any JSON value: the service validates it (ValidationError unless name -> number).
                metrics=cast("Mapping[str, float] | None", input.metrics),
                model_id=None if input.model_id is None else str(input.model_id),
                actor=info.context.actor,
                details=VersionDetails(
                    artifact_uri=input.artifact_uri,
                    artifact_digest=input.artifact_digest,
                    description=input.description,
                    tags=tag_pairs(input.tags),
                    source_job_id=None if input.source_job_id is None else str(input.source_job_id),
                ),
            )
        )

    @typed.mutation(
        description="Change a version's description and tags (any status; `tags` replaces "
        'them all, `description: ""` clears it), or its artifact while it is in '
        "development. Omitted arguments are unchanged. Errors: NotFoundError, "
        "ValidationError (rule immutable: the artifact of a version that has left "
        "development).",
        graphql_type=ModelVersionResult,
    )
    async def update_model_version(
        self,
        info: Info,
        model_id: strawberry.ID,
        description: str | None = None,
        tags: list[TagInput] | None = None,
        artifact_uri: str | None = None,
        artifact_digest: str | None = None,
    ) -> ModelVersion | MutationError:
        return await result_of(
            info.context.services.metadata.update(
                str(model_id),
                description=description,
                tags=tag_pairs(tags),
                artifact_uri=artifact_uri,
                artifact_digest=artifact_digest,
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="Move a version one stage: development -> testing -> production. Reaching "
        "production sets deployedDate and archives the model name's previous production "
        "version. Pass `to` to refuse anything but that step (safe to retry: `to: PRODUCTION` "
        "of the version already in production answers it, changing nothing). Errors: "
        "NotFoundError, InvalidTransitionError, ConflictError (a concurrent deployment won).",
        graphql_type=ModelVersionResult,
    )
    async def promote_model_version(
        self,
        info: Info,
        model_id: strawberry.ID,
        to: Annotated[
            ModelStatus | None,
            strawberry.argument(description="The stage expected after this promotion."),
        ] = None,
    ) -> ModelVersion | MutationError:
        return await result_of(
            info.context.services.registry.promote(
                str(model_id),
                DomainModelStatus(to) if to is not None else None,
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="Archive a version from development, testing or production (final). "
        "Errors: NotFoundError, InvalidTransitionError.",
        graphql_type=ModelVersionResult,
    )
    async def archive_model_version(
        self, info: Info, model_id: strawberry.ID
    ) -> ModelVersion | MutationError:
        return await result_of(
            info.context.services.registry.archive(str(model_id), actor=info.context.actor)
        )

    @typed.mutation(
        description="Merge metrics into a version's metrics (a key replaces its old value); "
        "archived versions are frozen. Errors: NotFoundError, InvalidTransitionError, "
        "ValidationError (rule max_items if the version would then hold more than 256).",
        graphql_type=ModelVersionResult,
    )
    async def update_model_version_metrics(
        self, info: Info, model_id: strawberry.ID, metrics: JSON
    ) -> ModelVersion | MutationError:
        return await result_of(
            info.context.services.registry.update_metrics(
                str(model_id),
                # Any JSON value: the service validates it (ValidationError unless name -> number).
                cast("Mapping[str, float]", metrics),
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="Point an alias of a model (`champion`, `staging`) at one of its versions, "
        "by compare-and-set: only if it names `expectedModelId` now (null: only if it does not "
        "exist yet). `production` is reserved. Errors: ConflictError (the alias names another "
        "version now: the message says which; or the version is ARCHIVED), NotFoundError, "
        "ValidationError (alias_pattern, reserved, model_name, max_items: 100 aliases per "
        "model).",
        graphql_type=ModelVersionResult,
    )
    async def set_model_alias(
        self,
        info: Info,
        model_name: str,
        alias: str,
        model_id: strawberry.ID,
        expected_model_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="The version the alias names now; null if it must not exist yet."
            ),
        ] = None,
    ) -> ModelVersion | MutationError:
        return await result_of(
            info.context.services.aliases.set(
                model_name,
                alias,
                str(model_id),
                None if expected_model_id is None else str(expected_model_id),
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="Delete an alias of a model; answers the version it named. With "
        "`expectedModelId`, only if it names that version. Errors: NotFoundError (no such "
        "alias), ConflictError, ValidationError.",
        graphql_type=ModelVersionResult,
    )
    async def delete_model_alias(
        self,
        info: Info,
        model_name: str,
        alias: str,
        expected_model_id: strawberry.ID | None = None,
    ) -> ModelVersion | MutationError:
        return await result_of(
            info.context.services.aliases.delete(
                model_name,
                alias,
                None if expected_model_id is None else str(expected_model_id),
                actor=info.context.actor,
            )
        )

    @typed.mutation(
        description="Put back a version that was in production before (ARCHIVED, with a "
        "deployedDate) in place of the current production version, in one step: the pointer "
        "moves by compare-and-set, the version goes back to PRODUCTION (a DEPLOYED event "
        "carrying the reason), the replaced one is ARCHIVED. Readers never see no production "
        "version. Safe to retry. Errors: NotFoundError, InvalidTransitionError (not a previous "
        "production version), ConflictError (a concurrent deployment won), ValidationError.",
        graphql_type=ModelVersionResult,
    )
    async def rollback_model_version(
        self,
        info: Info,
        model_name: str,
        to_model_id: strawberry.ID,
        reason: Annotated[
            str, strawberry.argument(description="Why (free text, 1-4,096 characters).")
        ],
    ) -> ModelVersion | MutationError:
        return await result_of(
            info.context.services.registry.rollback(
                model_name, str(to_model_id), reason, actor=info.context.actor
            )
        )
