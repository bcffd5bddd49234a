"""ModelRegistryService: registering model versions and moving them through their lifecycle."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from graphql_api.domain import validation
from graphql_api.domain.enums import ModelStatus, ModelType
from graphql_api.domain.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
    ValidationRule,
    status_name,
)
from graphql_api.domain.events import ChangeKind
from graphql_api.domain.ids import new_id
from graphql_api.domain.lifecycle import (
    PROMOTION_PATH,
    PROMOTIONS,
    Transition,
    VersionTransitions,
)
from graphql_api.domain.models import ModelVersion
from graphql_api.domain.queries import (
    MetricOrder,
    ModelVersionFilter,
    ModelVersionOrder,
    Page,
    PageRequest,
)
from graphql_api.domain.updates import MetricsMerge, Move
from graphql_api.domain.values import utc_now
from graphql_api.services.outbox import Outbox, new_pending
from graphql_api.services.registry_metadata import ModelMetadataService, VersionDetails
from graphql_api.services.registry_rollback import RollbackMixin
from graphql_api.storage.base import (
    MergeLimitExceeded,
    PendingChange,
    ProductionPointer,
    RecordBusy,
    Storage,
)

log = logging.getLogger("mltrain.registry")

RESOURCE = "ModelVersion"
#: Re-reads of a version that changed while it was being deployed (its metrics, a touch).
MAX_DEPLOY_ATTEMPTS = 20
#: Undone deployments one call follows before it gives up (each needs a concurrent archive).
MAX_FOLLOW_STEPS = 3
#: Pending changes of others one change waits for before it gives up. Concurrent changes of
#: one record take turns (one lands per turn, each waiting for the last one's event): 10 left
#: some of 20 concurrent metric reports of one job with a ConflictError on DocumentDB.
MAX_SETTLE_ATTEMPTS = 100
#: Statuses a version may be in while it holds (or gets back) the production pointer.
_DEPLOYABLE = frozenset({ModelStatus.TESTING, ModelStatus.PRODUCTION})


class ModelRegistryService(RollbackMixin):
    def __init__(self, storage: Storage) -> None:
        self._versions = storage.model_versions
        self._outbox = Outbox(storage)
        self._metadata = ModelMetadataService(storage)

    # Reads -----------------------------------------------------------------------------

    async def get(self, model_id: str) -> ModelVersion | None:
        return await self._versions.get(model_id)

    async def get_many(self, model_ids: Sequence[str]) -> dict[str, ModelVersion]:
        return await self._versions.get_many(model_ids)

    async def find(
        self,
        where: ModelVersionFilter,
        order: ModelVersionOrder | MetricOrder,
        page: PageRequest,
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
        details: VersionDetails | None = None,
    ) -> ModelVersion:
        """A new version in ``development``; ``(model_name, version)`` must be new.
        ``details``: its artifact, metadata and source job (``registry_metadata``); the
        version records ``actor`` as ``created_by``."""
        extra = await self._metadata.registration_fields(details or VersionDetails())
        record = validation.build(
            ModelVersion,
            model_id=model_id if model_id is not None else new_id(),
            model_name=model_name,
            version=version,
            model_type=model_type,
            metrics=metrics if metrics is not None else {},
            created_date=utc_now(),
            created_by=actor,
            **extra,
        )
        pending = _pending(VersionTransitions.REGISTER.kind, None, actor)
        await self._versions.insert(record, pending)
        await self._versions.add_model_name(record.model_name)  # the list of models
        await self._publish(record, pending)
        return record

    async def promote(
        self, model_id: str, to: ModelStatus | None = None, *, actor: str | None = None
    ) -> ModelVersion:
        """One step along development -> testing -> production.

        ``to`` makes the request explicit, so a retried or double-clicked promotion cannot move
        a version two steps; a repeated ``to: PRODUCTION`` of the version that is in production
        is answered with it, without a second change. Reaching production moves the name's
        production pointer (see ``_deploy``).
        """
        current = await self._require(model_id)
        if to is ModelStatus.PRODUCTION and current.status is ModelStatus.PRODUCTION:
            return await self._deploy(current, actor)
        promotion = PROMOTIONS.get(current.status)
        target = None if promotion is None else promotion.target
        if promotion is None or target is None or (to is not None and to is not target):
            raise _cannot_promote(current, to or target)
        if promotion is VersionTransitions.DEPLOY:
            return await self._deploy(current, actor)
        promoted = await self._change(model_id, current.status, promotion, actor)
        if promoted is None:
            raise await self._refused(model_id, target)
        return promoted

    # Deployment: the production pointer -----------------------------------------------
    #
    # Which version of a name is in production is the name's production pointer, moved by one
    # compare-and-set (``move_production``); a promotion moves it only to a version that never
    # held it, so one decided on a stale read cannot move production back. Whoever moves it
    # then makes the statuses follow, recording an event for each status change it makes:
    #   1. the new holder: testing -> production (DEPLOYED). The update is made only while the
    #      pointer still names it, filtered on the revision read before checking the pointer.
    #      A holder archived on its way (an archive that read the pointer before the move)
    #      makes the follower undo the move (``_undo``);
    #   2. the displaced holder, if it was still on its way to production, is touched (its
    #      revision bumped), so that its own deployer's update matches nothing and gives up,
    #      and may be promoted again later;
    #   3. every version of the name still in production that reached it before this move is
    #      archived (ARCHIVED).
    # Each step is a conditional update, so concurrent helpers (a duplicate promotion of the
    # same version runs the same steps) make each change once, and a step that is repeated
    # after a crash does nothing twice. Readers (``InferenceService``) go by the pointer, and
    # serve the displaced version until the new one has reached production: no gap.

    async def _deploy(self, candidate: ModelVersion, actor: str | None) -> ModelVersion:
        name = candidate.model_name
        # The version first, then the pointer: a version found in production is then either
        # the pointer's or one it has moved on from, never one it is just moving to.
        fresh = await self._require(candidate.model_id)
        pointer = await self._versions.production_pointer(name)
        if pointer.model_id != candidate.model_id:
            if fresh.status is ModelStatus.PRODUCTION:
                # In production only until the sweep of the deployment that displaced it.
                raise _superseded(name, pointer, candidate.model_id)
            if fresh.status is not ModelStatus.TESTING:
                raise _cannot_promote(fresh, ModelStatus.PRODUCTION)
            moved = await self._versions.move_production(
                pointer, candidate.model_id, first_holding=True
            )
            if moved is None:
                pointer = await self._versions.production_pointer(name)
                if pointer.model_id != candidate.model_id:
                    raise _superseded(name, pointer, candidate.model_id)
            else:
                pointer = moved
        deployed = await self._follow(pointer, actor)
        if deployed is None or deployed.model_id != candidate.model_id:
            fresh = await self._require(candidate.model_id)
            if fresh.status not in _DEPLOYABLE:
                raise _cannot_promote(fresh, ModelStatus.PRODUCTION)
            raise _superseded(name, await self._versions.production_pointer(name), fresh.model_id)
        return deployed

    async def _follow(self, pointer: ProductionPointer, actor: str | None) -> ModelVersion | None:
        """Make the statuses of the name's versions follow ``pointer``; the version in
        production afterwards (None if the pointer is empty)."""
        for _ in range(MAX_FOLLOW_STEPS):
            holder = None
            if pointer.model_id is not None:
                outcome = await self._put_in_production(pointer, actor)
                if isinstance(outcome, ProductionPointer):
                    pointer = outcome  # The deployment was undone: follow that instead.
                    continue
                holder = outcome
            previous = pointer.previous_model_id
            # Displaced before it reached production: it may be deployed again later.
            if (
                previous is not None
                and previous != pointer.model_id
                # ARCHIVED: a version on its way back by a rollback (registry_rollback.py).
                and await self._versions.touch(
                    previous, {ModelStatus.TESTING, ModelStatus.ARCHIVED}
                )
            ):
                await self._versions.release_holding(pointer.model_name, previous)
            await self._retire_displaced(pointer, actor)
            return holder
        raise ConflictError(
            f"production of {pointer.model_name!r} is being changed by too many requests at "
            "once; read productionModelVersion and retry",
            field="modelId",
        )

    async def _put_in_production(
        self, pointer: ProductionPointer, actor: str | None
    ) -> ModelVersion | ProductionPointer:
        """Deploy the pointer's holder; the pointer that replaced it if it had to be undone."""
        holder_id = pointer.model_id
        assert holder_id is not None
        for _ in range(MAX_DEPLOY_ATTEMPTS):
            read = await self._versions.get_revisioned(holder_id)
            if read is None:
                raise NotFoundError(RESOURCE, holder_id, field="modelId")
            version = read.version
            if read.production_revision == pointer.revision:
                # Deployed by a concurrent caller (a duplicate promotion): its DEPLOYED event
                # goes to the log before this call answers or retires anything.
                await self._settle(holder_id)
                return version
            if version.status not in _DEPLOYABLE:
                # Archived on its way to production (an archive that read the pointer before
                # this move): not a version to move to. Give production back.
                return await self._undo(pointer, version)
            now = await self._versions.read_production_pointer(pointer.model_name)
            if now is None or now.model_id != holder_id or now.revision != pointer.revision:
                raise _superseded(pointer.model_name, now, holder_id)
            if version.status is ModelStatus.PRODUCTION:
                # Given back by an undone move: still in production (no status change, no
                # event), it takes the new holding's revision, so that nothing that read the
                # pointer before the undo retires it as displaced.
                try:
                    kept = await self._versions.update(
                        holder_id,
                        {ModelStatus.PRODUCTION},
                        (),
                        at_revision=read.revision,
                        production_revision=pointer.revision,
                    )
                except RecordBusy:
                    kept = None
                if kept is not None:
                    return kept
                await self._settle(holder_id)
                continue
            deployed = await self._change(
                holder_id,
                ModelStatus.TESTING,
                VersionTransitions.DEPLOY,
                actor,
                at_revision=read.revision,
                production_revision=pointer.revision,
            )
            if deployed is not None:
                return deployed
            # The version changed since it was read (its metrics, a touch): read it again.
        raise ConflictError(
            f"{RESOURCE} {holder_id!r} is being changed by too many requests at once; retry",
            field="modelId",
        )

    async def _undo(self, pointer: ProductionPointer, left: ModelVersion) -> ProductionPointer:
        """The holder cannot be deployed (see ``_put_in_production``): point production back
        at the version it displaced (a new holding of it: see ``_put_in_production``), or at
        nothing if that one is gone too."""
        previous = pointer.previous_model_id
        back_to = None
        if previous is not None:
            found = await self._versions.get(previous)
            if found is not None and found.status in _DEPLOYABLE:
                back_to = previous
        undone = await self._versions.move_production(pointer, back_to)
        if undone is None:
            # Someone moved on from it already; their deployment retires what it displaced.
            now = await self._versions.read_production_pointer(pointer.model_name)
            raise _superseded(pointer.model_name, now, left.model_id)
        return undone

    async def _retire_displaced(self, pointer: ProductionPointer, actor: str | None) -> None:
        displaced = await self._versions.displaced_in_production(
            pointer.model_name, pointer.model_id, pointer.revision
        )
        for version in displaced:
            # None: a concurrent helper retired it (and recorded it).
            await self._change(
                version.model_id,
                ModelStatus.PRODUCTION,
                VersionTransitions.ARCHIVE,
                actor,
                before_production_revision=pointer.revision,
            )

    async def archive(self, model_id: str, *, actor: str | None = None) -> ModelVersion:
        current = await self._require(model_id)
        pointer = await self._versions.production_pointer(current.model_name)
        moved = None
        steps: list[tuple[ModelStatus, int | None]]
        if pointer.model_id == model_id:
            # The production version: empty the pointer first, so no deployment undoes this.
            moved = await self._versions.move_production(pointer, None)
            if moved is None:
                now = await self._versions.production_pointer(current.model_name)
                raise _superseded(current.model_name, now, model_id)
            steps = [(ModelStatus.PRODUCTION, None), (ModelStatus.TESTING, None)]
        else:
            # Any other version; one in production only if it reached production before the
            # pointer was read (a version displaced and not yet retired), never the one a
            # concurrent deployment has just put there.
            steps = [
                (ModelStatus.DEVELOPMENT, None),
                (ModelStatus.TESTING, None),
                (ModelStatus.PRODUCTION, pointer.revision),
            ]
        for source, reached_before in steps:
            archived = await self._change(
                model_id,
                source,
                VersionTransitions.ARCHIVE,
                actor,
                before_production_revision=reached_before,
            )
            if archived is not None:
                break
        if moved is not None:
            await self._follow(moved, actor)
        if archived is None:
            fresh = await self._require(model_id)
            if moved is not None and fresh.status is ModelStatus.ARCHIVED:
                return fresh  # Retired by a concurrent helper of this very change.
            raise _cannot_archive(fresh)
        return archived

    async def update_metrics(
        self, model_id: str, metrics: Mapping[str, float], *, actor: str | None = None
    ) -> ModelVersion:
        """Merge ``metrics`` into the version's metrics (archived versions are frozen)."""
        checked = validation.metrics(metrics)
        if not checked:
            raise ValidationError(
                "metrics", "must name at least one metric", rule=ValidationRule.min_length
            )
        updated = await self._merge_metrics(model_id, checked, actor)
        if updated is None:
            current = await self._require(model_id)
            raise InvalidTransitionError(
                RESOURCE,
                model_id,
                current.status.value,
                None,
                f"{RESOURCE} {model_id!r} is {current.status.value}: its metrics are frozen",
            )
        return updated

    # Helpers ---------------------------------------------------------------------------

    async def _change(
        self,
        model_id: str,
        source: ModelStatus,
        transition: Transition[ModelStatus],
        actor: str | None,
        **conditions: int | None,
    ) -> ModelVersion | None:
        """``transition`` from ``source`` and its event, in the order of the version's changes:
        the change is stored with its event pending (``PendingChange``); a change still pending
        from someone else is published first. None if the status (or a condition) did not
        match."""
        assert transition.target is not None and source in transition.sources
        for _ in range(MAX_SETTLE_ATTEMPTS):
            pending = _pending(transition.kind, source, actor)
            move = Move(transition=transition, at=pending.occurred_at)
            try:
                changed = await self._versions.update(
                    model_id, {source}, [move], pending=pending, **conditions
                )
            except RecordBusy:
                await self._settle(model_id)
                continue
            if changed is not None:
                await self._publish(changed, pending)
            return changed
        raise ConflictError(
            f"{RESOURCE} {model_id!r} is being changed by too many requests at once; retry",
            field="modelId",
        )

    async def _settle(self, model_id: str) -> bool:
        """Make sure the version's pending change, if it has one, is in the log; whether there
        was one (``Outbox.settle_version``)."""
        return await self._outbox.settle_version(model_id)

    async def _publish(self, version: ModelVersion, pending: PendingChange) -> None:
        await self._outbox.publish_version(version, pending)

    async def _merge_metrics(
        self, model_id: str, metrics: Mapping[str, float], actor: str | None
    ) -> ModelVersion | None:
        """Merge keeping the *stored* metrics within MAX_METRICS, not only each call's, with
        its event (pending, then relayed, like every change: see ``_change``)."""
        try:
            for _ in range(MAX_SETTLE_ATTEMPTS):
                pending = new_pending(
                    VersionTransitions.UPDATE_METRICS.kind, None, actor, keeps_status=True
                )
                try:
                    updated = await self._versions.update(
                        model_id,
                        VersionTransitions.UPDATE_METRICS.sources,
                        [MetricsMerge(metrics=metrics)],
                        pending=pending,
                    )
                except RecordBusy:
                    await self._settle(model_id)
                    continue
                if updated is not None:
                    await self._publish(updated, pending)
                return updated
        except MergeLimitExceeded as error:
            raise ValidationError(
                "metrics",
                f"{RESOURCE} {model_id!r} has {error.stored} metrics; with these it would have "
                f"{error.merged}, over the limit of {error.limit} per version (nothing was "
                "written)",
                rule=ValidationRule.max_items,
            ) from None
        raise ConflictError(
            f"{RESOURCE} {model_id!r} is being changed by too many requests at once; retry",
            field="modelId",
        )

    async def _require(self, model_id: str) -> ModelVersion:
        version = await self._versions.get(model_id)
        if version is None:
            raise NotFoundError(RESOURCE, model_id, field="modelId")
        return version

    async def _refused(self, model_id: str, target: ModelStatus) -> InvalidTransitionError:
        """The error for a conditional update that matched nothing (the status moved on)."""
        current = await self._require(model_id)
        return InvalidTransitionError(RESOURCE, model_id, current.status, target)


def _pending(kind: ChangeKind, source: ModelStatus | None, actor: str | None) -> PendingChange:
    return new_pending(kind, None if source is None else source.value, actor)


def _cannot_promote(version: ModelVersion, requested: ModelStatus | None) -> InvalidTransitionError:
    status = version.status
    next_stage = PROMOTION_PATH.get(status)
    if requested is None or next_stage is None:
        reason = (
            f"{status_name(status)} is final"
            if status is ModelStatus.ARCHIVED
            else "there is no stage to promote it to"
        )
    else:
        reason = (
            f"promotion moves one stage at a time, and its next stage is {status_name(next_stage)}"
        )
    described = f"{RESOURCE} {version.model_id!r} is {status_name(status)}"
    if requested is not None:
        described += f" and cannot go to {status_name(requested)}"
    return InvalidTransitionError(
        RESOURCE, version.model_id, status, requested, f"{described}: {reason}"
    )


def _cannot_archive(version: ModelVersion) -> InvalidTransitionError:
    return InvalidTransitionError(
        RESOURCE,
        version.model_id,
        version.status,
        ModelStatus.ARCHIVED,
        f"{RESOURCE} {version.model_id!r} is already {status_name(version.status)}",
    )


def _superseded(name: str, pointer: ProductionPointer | None, model_id: str) -> ConflictError:
    holder = None if pointer is None else pointer.model_id
    now = "no version is" if holder is None else f"version {holder!r} is"
    return ConflictError(
        f"a concurrent change of {name!r} won: {now} in production now, not {model_id!r}; "
        "read productionModelVersion and retry if the change is still wanted",
        field="modelId",
    )
