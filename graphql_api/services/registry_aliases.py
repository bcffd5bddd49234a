"""Aliases of a model name: named pointers at its versions, moved by compare-and-set.

``setModelAlias(modelName, alias, modelId, expectedModelId)`` moves an alias only if it still
names ``expectedModelId`` (null: only if it does not exist yet), so two release tools cannot
overwrite each other's move unknowingly: the loser gets a ConflictError naming the version the
alias names now. ``production`` is not stored: it is the production pointer, read as
``productionModelVersion`` reads it (no gap during a hand-over).

Each move carries its event in its own write (the name's registry document: see
``storage/mongo/model_aliases.py``), relayed to the log like every change (``services.outbox``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from graphql_api.domain import aliases, text, validation
from graphql_api.domain.enums import ModelStatus
from graphql_api.domain.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
    ValidationRule,
)
from graphql_api.domain.events import ChangeKind
from graphql_api.domain.models import ModelVersion
from graphql_api.services.inference import InferenceService
from graphql_api.services.outbox import MAX_SETTLE_ATTEMPTS, Outbox, new_pending
from graphql_api.services.registry_lookup import version_of_model
from graphql_api.storage.base import RecordBusy, Storage

RESOURCE = "ModelVersion"


class ModelAliasService:
    def __init__(self, storage: Storage, inference: InferenceService) -> None:
        self._versions = storage.model_versions
        self._inference = inference
        self._outbox = Outbox(storage)

    async def by_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        validation.checked(text.check_name, model_name, "modelName")
        validation.checked(aliases.check_alias_name, alias, "alias")
        if alias == aliases.PRODUCTION_ALIAS:
            return await self._inference.production_version(model_name)
        named = (await self._versions.aliases_of([model_name]))[model_name].get(alias)
        return None if named is None else await self._versions.get(named)

    async def aliases_by_name(self, model_names: Sequence[str]) -> dict[str, dict[str, str]]:
        """For each name, alias -> model id, ``production`` included when a version is in
        production (the version ``productionModelVersion`` answers)."""
        found = await self._versions.aliases_of(model_names)
        for name in model_names:
            serving = await self._inference.production_version(name)
            if serving is not None:
                found[name][aliases.PRODUCTION_ALIAS] = serving.model_id
        return found

    async def set(
        self,
        model_name: str,
        alias: str,
        model_id: str,
        expected_model_id: str | None,
        *,
        actor: str | None = None,
    ) -> ModelVersion:
        validation.checked(text.check_name, model_name, "modelName")
        validation.checked(aliases.check_alias, alias, "alias")
        target = await version_of_model(
            self._versions,
            model_name,
            model_id,
            field="modelId",
            why=": an alias names a version of its own model",
        )
        if target.status is ModelStatus.ARCHIVED:
            raise ConflictError(
                f"{RESOURCE} {model_id!r} is ARCHIVED (retired for good): an alias may not name it",
                field="modelId",
            )
        await self._versions.production_pointer(model_name)  # the registry document exists
        if expected_model_id == model_id:
            # Names it already: the compare-and-set changes nothing, and records no event.
            moved = await self._versions.move_alias(
                model_name, alias, model_id, expected_model_id, aliases.MAX_ALIASES
            )
        else:
            moved = (
                await self._move(
                    model_name,
                    alias,
                    model_id,
                    expected_model_id,
                    about=target,
                    kind=ChangeKind.ALIAS_SET,
                    actor=actor,
                )
                is not None
            )
        if not moved:
            current = await self._holder(model_name, alias)
            if current == model_id:
                return target  # a retry of a move that landed: nothing more to do
            raise await self._refused(model_name, alias, current, expected_model_id)
        return target

    async def delete(
        self,
        model_name: str,
        alias: str,
        expected_model_id: str | None = None,
        *,
        actor: str | None = None,
    ) -> ModelVersion:
        """Delete the alias (only if it names ``expected_model_id``, when given); the version
        it named."""
        validation.checked(text.check_name, model_name, "modelName")
        validation.checked(aliases.check_alias, alias, "alias")
        current = await self._holder(model_name, alias)
        if current is None:
            raise NotFoundError("ModelAlias", f"{model_name}:{alias}", field="alias")
        if expected_model_id is not None and current != expected_model_id:
            raise await self._refused(model_name, alias, current, expected_model_id)
        version = await self._move(
            model_name,
            alias,
            None,
            current,
            about=current,
            kind=ChangeKind.ALIAS_DELETED,
            actor=actor,
        )
        if version is None:
            now = await self._holder(model_name, alias)
            if now is None:
                raise NotFoundError("ModelAlias", f"{model_name}:{alias}", field="alias")
            raise await self._refused(model_name, alias, now, current)
        return version

    async def _move(
        self,
        model_name: str,
        alias: str,
        model_id: str | None,
        expected: str | None,
        *,
        about: ModelVersion | str,
        kind: ChangeKind,
        actor: str | None,
    ) -> ModelVersion | None:
        """The compare-and-set with its event pending in the same write, then the event
        relayed; the version the event is about (``about``, read after the move when given by
        id), or None if it did not move. An alias change of the name still pending from someone else
        is relayed first (the name's alias events keep the order of the moves)."""
        for _ in range(MAX_SETTLE_ATTEMPTS):
            pending = new_pending(kind, None, actor, keeps_status=True)
            pending = replace(
                pending,
                alias=alias,
                model_id=about if isinstance(about, str) else about.model_id,
                previous_model_id=expected if kind is ChangeKind.ALIAS_SET else None,
            )
            try:
                moved = await self._versions.move_alias(
                    model_name, alias, model_id, expected, aliases.MAX_ALIASES, pending=pending
                )
            except RecordBusy:
                await self._outbox.settle_aliases(model_name)
                continue
            if not moved:
                return None
            version = await self._versions.get(about) if isinstance(about, str) else about
            if version is None:  # a version is never deleted; an alias outlives nothing
                raise NotFoundError(RESOURCE, pending.model_id or "", field="alias")
            await self._outbox.publish_alias(version, pending)
            return version
        raise ConflictError(
            f"aliases of {model_name!r} are being changed by too many requests at once; retry",
            field="alias",
        )

    async def _holder(self, model_name: str, alias: str) -> str | None:
        return (await self._versions.aliases_of([model_name]))[model_name].get(alias)

    async def _refused(
        self, model_name: str, alias: str, current: str | None, expected: str | None
    ) -> DomainRefusal:
        if current is None and expected is None:
            # Not there and not to be created: the name holds its limit of aliases.
            return ValidationError(
                "alias",
                f"{model_name!r} has {aliases.MAX_ALIASES} aliases, the limit: delete one first",
                rule=ValidationRule.max_items,
            )
        now = "does not exist" if current is None else f"names {current!r}"
        wanted = "not to exist" if expected is None else f"to name {expected!r}"
        return ConflictError(
            f"alias {alias!r} of {model_name!r} {now}; expectedModelId wanted it {wanted}. Read "
            "it again (modelVersionByAlias) and retry with that as expectedModelId",
            field="expectedModelId",
        )


DomainRefusal = ConflictError | ValidationError
