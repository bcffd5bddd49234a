"""ModelRegistryService: registering model versions and moving them through their lifecycle."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from graphql_api.domain import validation
from graphql_api.domain.enums import ModelStatus, ModelType
from graphql_api.domain.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from graphql_api.domain.events import ChangeKind
from graphql_api.domain.ids import new_id
from graphql_api.domain.lifecycle import (
    MODEL_METRICS_EDITABLE,
    PROMOTION_PATH,
    model_sources,
)
from graphql_api.domain.models import ModelVersion
from graphql_api.domain.queries import ModelVersionFilter, ModelVersionOrder, Page, PageRequest
from graphql_api.domain.values import MAX_METRICS, utc_now
from graphql_api.services.changes import ChangeRecorder
from graphql_api.storage.base import MergeLimitExceeded, Storage

RESOURCE = "ModelVersion"


class ModelRegistryService:
    def __init__(self, storage: Storage) -> None:
        self._versions = storage.model_versions
        self._record = ChangeRecorder(storage.events)

    # Reads -----------------------------------------------------------------------------

    async def get(self, model_id: str) -> ModelVersion | None:
        return await self._versions.get(model_id)

    async def get_many(self, model_ids: Sequence[str]) -> dict[str, ModelVersion]:
        return await self._versions.get_many(model_ids)

    async def find(
        self, where: ModelVersionFilter, order: ModelVersionOrder, page: PageRequest
    ) -> Page[ModelVersion]:
        return await self._versions.find(where, order, page)

    async def count(self, where: ModelVersionFilter) -> int:
        return await self._versions.count(where)

    # Changes ---------------------------------------------------------------------------

    async def register(
        self,
        *,
        model_name: str,
        version: str,
        model_type: ModelType | str,
        metrics: Mapping[str, float] | None = None,
        model_id: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """A new version in ``development``; ``(model_name, version)`` must be new."""
        record = validation.build(
            ModelVersion,
            model_id=model_id if model_id is not None else new_id(),
            model_name=model_name,
            version=version,
            model_type=model_type,
            metrics=metrics if metrics is not None else {},
            created_date=utc_now(),
        )
        await self._versions.insert(record)
        await self._record.model_version(record, ChangeKind.REGISTERED, None, actor)
        return record

    async def promote(
        self, model_id: str, to: ModelStatus | None = None, *, actor: str | None = None
    ) -> ModelVersion:
        """One step along development -> testing -> production.

        ``to`` makes the request explicit, so a retried or double-clicked promotion cannot move
        a version two steps. Reaching production retires the name's current production version
        to ``archived``; a unique index on the production slot keeps at most one version per
        name in production even when promotions race (the loser gets a ConflictError).
        """
        current = await self._require(model_id)
        target = PROMOTION_PATH.get(current.status)
        if target is None or (to is not None and to is not target):
            requested = to or target
            raise InvalidTransitionError(
                RESOURCE,
                model_id,
                current.status.value,
                requested.value if requested else None,
                None
                if requested
                else f"{RESOURCE} {model_id!r} is {current.status.value}: "
                "there is no stage to promote it to",
            )
        if target is ModelStatus.PRODUCTION:
            return await self._deploy(current, actor)
        promoted = await self._versions.transition(model_id, {current.status}, target)
        if promoted is None:
            raise await self._refused(model_id, target)
        await self._record.model_version(promoted, ChangeKind.PROMOTED, current.status, actor)
        return promoted

    async def _deploy(self, candidate: ModelVersion, actor: str | None) -> ModelVersion:
        holder = await self._versions.production(candidate.model_name)
        retired = None
        if holder is not None:
            retired = await self._versions.transition(
                holder.model_id, {ModelStatus.PRODUCTION}, ModelStatus.ARCHIVED
            )
        try:
            deployed = await self._versions.transition(
                candidate.model_id,
                {ModelStatus.TESTING},
                ModelStatus.PRODUCTION,
                {"deployed_date": utc_now()},
            )
        except ConflictError:
            raise ConflictError(
                f"another version of {candidate.model_name!r} was deployed to production "
                "concurrently; read the current production version and retry if still wanted",
                field="modelId",
            ) from None
        if deployed is None:
            # The candidate left ``testing`` meanwhile: put the retired version back, so a
            # refused promotion leaves production as it found it.
            if retired is not None:
                await self._restore(retired)
            raise await self._refused(candidate.model_id, ModelStatus.PRODUCTION)
        if retired is not None:
            await self._record.model_version(
                retired, ChangeKind.ARCHIVED, ModelStatus.PRODUCTION, actor
            )
        await self._record.model_version(deployed, ChangeKind.DEPLOYED, ModelStatus.TESTING, actor)
        return deployed

    async def _restore(self, retired: ModelVersion) -> None:
        # A ConflictError means another deployment took the slot meanwhile: not empty either.
        with contextlib.suppress(ConflictError):
            await self._versions.transition(
                retired.model_id, {ModelStatus.ARCHIVED}, ModelStatus.PRODUCTION
            )

    async def archive(self, model_id: str, *, actor: str | None = None) -> ModelVersion:
        current = await self._require(model_id)
        sources = model_sources(ModelStatus.ARCHIVED)
        archived = await self._versions.transition(model_id, sources, ModelStatus.ARCHIVED)
        if archived is None:
            raise await self._refused(model_id, ModelStatus.ARCHIVED)
        await self._record.model_version(archived, ChangeKind.ARCHIVED, current.status, actor)
        return archived

    async def update_metrics(
        self, model_id: str, metrics: Mapping[str, float], *, actor: str | None = None
    ) -> ModelVersion:
        """Merge ``metrics`` into the version's metrics (archived versions are frozen)."""
        checked = validation.metrics(metrics)
        if not checked:
            raise ValidationError("metrics", "must name at least one metric", rule="min_length")
        updated = await self._merge_metrics(model_id, checked)
        if updated is None:
            current = await self._require(model_id)
            raise InvalidTransitionError(
                RESOURCE,
                model_id,
                current.status.value,
                None,
                f"{RESOURCE} {model_id!r} is {current.status.value}: its metrics are frozen",
            )
        await self._record.model_version(updated, ChangeKind.METRICS_UPDATED, updated.status, actor)
        return updated

    # Helpers ---------------------------------------------------------------------------

    async def _merge_metrics(
        self, model_id: str, metrics: Mapping[str, float]
    ) -> ModelVersion | None:
        """Merge keeping the *stored* metrics within MAX_METRICS, not only each call's."""
        try:
            return await self._versions.merge_metrics(
                model_id, metrics, MODEL_METRICS_EDITABLE, MAX_METRICS
            )
        except MergeLimitExceeded as error:
            raise ValidationError(
                "metrics",
                f"{RESOURCE} {model_id!r} has {error.stored} metrics; with these it would have "
                f"{error.merged}, over the limit of {error.limit} per version (nothing was "
                "written)",
                rule="max_items",
            ) from None

    async def _require(self, model_id: str) -> ModelVersion:
        version = await self._versions.get(model_id)
        if version is None:
            raise NotFoundError(RESOURCE, model_id, field="modelId")
        return version

    async def _refused(self, model_id: str, target: ModelStatus) -> InvalidTransitionError:
        """The error for a conditional update that matched nothing (the status moved on)."""
        current = await self._require(model_id)
        return InvalidTransitionError(RESOURCE, model_id, current.status.value, target.value)
