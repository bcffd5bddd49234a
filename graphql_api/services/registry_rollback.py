"""Rollback: put back a version that was in production before, in one step.

A base of ``ModelRegistryService`` (it uses the deployment's steps: the production pointer's
compare-and-set, then statuses following it; see ``services/registry.py``):

1. the pointer moves to the version being put back (compare-and-set on its revision), so no
   concurrent deployment interleaves: one of them wins, the other gets a ConflictError;
2. that version goes ARCHIVED -> PRODUCTION (a ``DEPLOYED`` event carrying the ``reason`` and
   the version it replaces), only while the pointer still names it, filtered on the revision
   read before checking the pointer (a deployment that displaces it meanwhile bumps that
   revision, so a late update matches nothing);
3. the deployment's follower retires the replaced version (``ARCHIVED``).

Readers get the replaced version until step 2, then the one put back: no gap, as for any
deployment. A retry of a rollback that landed answers the version, with no second event.
"""

from __future__ import annotations

import uuid

from graphql_api.domain import text, validation
from graphql_api.domain.enums import ModelStatus
from graphql_api.domain.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    status_name,
)
from graphql_api.domain.lifecycle import VersionTransitions
from graphql_api.domain.models import ModelVersion
from graphql_api.domain.updates import Move
from graphql_api.domain.values import utc_now
from graphql_api.services.registry_lookup import version_of_model
from graphql_api.storage.base import (
    ModelVersionStore,
    PendingChange,
    ProductionPointer,
    RecordBusy,
)

RESOURCE = "ModelVersion"
#: Re-reads of the version being put back when its revision moved (a metadata update).
MAX_ROLLBACK_ATTEMPTS = 10


class RollbackMixin:
    _versions: ModelVersionStore

    async def rollback(
        self, model_name: str, to_model_id: str, reason: str, *, actor: str | None = None
    ) -> ModelVersion:
        """Put ``to_model_id`` (ARCHIVED, with a ``deployedDate``) back in production in place
        of the current production version, recording ``reason``."""
        validation.checked(text.check_name, model_name, "modelName")
        reason = validation.checked(text.check_text, reason, "reason")
        target = await version_of_model(self._versions, model_name, to_model_id, field="toModelId")
        if target.status is ModelStatus.PRODUCTION:
            stored = await self._versions.read_production_pointer(model_name)
            if stored is None or stored.model_id == to_model_id:
                return target  # a retry of a rollback (or deployment) that landed
            raise await self._lost(model_name, to_model_id)  # being retired
        if target.status is not ModelStatus.ARCHIVED or target.deployed_date is None:
            raise _not_a_previous_production(target)
        # Checked before the pointer is read: a refused rollback writes nothing (reading the
        # pointer creates it for a name stored before pointers existed).
        pointer = await self._versions.production_pointer(model_name)
        if pointer.model_id != to_model_id:
            moved = await self._versions.move_production(pointer, to_model_id)
            if moved is None:
                raise await self._lost(model_name, to_model_id)
            pointer = moved
        # The pointer names it (moved here, or by a rollback that died half-way): follow.
        await self._put_back(pointer, reason, actor)
        deployed = await self._follow(pointer, actor)
        if deployed is None or deployed.model_id != to_model_id:
            raise await self._lost(model_name, to_model_id)
        return deployed

    async def _put_back(self, pointer: ProductionPointer, reason: str, actor: str | None) -> None:
        model_id = pointer.model_id
        assert model_id is not None
        for _ in range(MAX_ROLLBACK_ATTEMPTS):
            read = await self._versions.get_revisioned(model_id)
            if read is None:
                raise NotFoundError(RESOURCE, model_id, field="toModelId")
            if read.production_revision == pointer.revision:
                await self._settle(model_id)  # a concurrent duplicate put it back
                return
            now = await self._versions.read_production_pointer(pointer.model_name)
            # The pointer first: a version that left ARCHIVED under a later pointer revision
            # (put back by a duplicate whose holding an undone deployment then renewed) lost
            # to a concurrent change, a ConflictError, not a version that cannot be rolled to.
            if now is None or now.revision != pointer.revision:
                raise await self._lost(pointer.model_name, model_id)
            if read.version.status is not ModelStatus.ARCHIVED:
                raise _not_a_previous_production(read.version)
            pending = PendingChange(
                event_id=uuid.uuid4().hex,
                kind=VersionTransitions.ROLLBACK.kind,
                previous_status=ModelStatus.ARCHIVED.value,
                occurred_at=utc_now(),
                actor=actor,
                reason=reason,
                previous_model_id=pointer.previous_model_id,
            )
            try:
                changed = await self._versions.update(
                    model_id,
                    VersionTransitions.ROLLBACK.sources,
                    [Move(transition=VersionTransitions.ROLLBACK, at=pending.occurred_at)],
                    at_revision=read.revision,
                    production_revision=pointer.revision,
                    pending=pending,
                )
            except RecordBusy:  # another change's event is pending: relay it, then retry
                changed = None
            if changed is not None:
                await self._publish(changed, pending)
                return
            await self._settle(model_id)
        raise ConflictError(
            f"{RESOURCE} {model_id!r} is being changed by too many requests at once; retry",
            field="toModelId",
        )

    async def _lost(self, model_name: str, model_id: str) -> ConflictError:
        now = await self._versions.read_production_pointer(model_name)
        if now is not None and now.model_id != model_id:
            # Make the statuses follow whoever won (it may have to give production back).
            await self._follow(now, None)
            now = await self._versions.read_production_pointer(model_name)
        holder = None if now is None else now.model_id
        named = "no version is" if holder is None else f"version {holder!r} is"
        return ConflictError(
            f"a concurrent change of {model_name!r} won: {named} in production now, not "
            f"{model_id!r}; read productionModelVersion and retry if the rollback is still "
            "wanted",
            field="toModelId",
        )

    # ModelRegistryService's (the deployment's steps).

    async def _follow(self, pointer: ProductionPointer, actor: str | None) -> ModelVersion | None:
        raise NotImplementedError

    async def _publish(self, version: ModelVersion, pending: PendingChange) -> None:
        raise NotImplementedError

    async def _settle(self, model_id: str) -> bool:
        raise NotImplementedError


def _not_a_previous_production(version: ModelVersion) -> InvalidTransitionError:
    status = status_name(version.status)
    why = (
        "it never reached production"
        if version.deployed_date is None
        else f"it is {status}, not ARCHIVED"
    )
    return InvalidTransitionError(
        RESOURCE,
        version.model_id,
        version.status,
        ModelStatus.PRODUCTION,
        f"{RESOURCE} {version.model_id!r} is {status} and cannot be rolled back to: a rollback "
        f"puts back an ARCHIVED version that was in production before, and {why}",
    )
