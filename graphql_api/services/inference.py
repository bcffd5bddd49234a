"""InferenceService: what an inference service asks the registry."""

from __future__ import annotations

from collections.abc import Sequence

from graphql_api.domain import text, validation
from graphql_api.domain.models import ModelVersion
from graphql_api.storage.base import Storage


class InferenceService:
    def __init__(self, storage: Storage) -> None:
        self._versions = storage.model_versions

    async def production_version(self, model_name: str) -> ModelVersion | None:
        """The one version of ``model_name`` in production, if any: the production pointer's.

        During a hand-over the pointer already names the new version while its status is still
        being moved to production: until then the version it displaces is still serving (it is
        retired only after), and is the answer. So a reader polling through a deployment sees
        the old version, then the new one: never none, never a version not in production.
        """
        validation.checked(text.check_name, model_name, "modelName")
        pointer = await self._versions.read_production_pointer(model_name)
        if pointer is not None and pointer.model_id is not None:
            holder = await self._versions.get_revisioned(pointer.model_id)
            if holder is not None and holder.production_revision == pointer.revision:
                return holder.version
        # A hand-over under way (the versions it displaces are retired only once the holder is
        # in production), a name stored before pointers existed, or none.
        return await self._versions.newest_in_production(model_name)

    async def production_versions(self, model_names: Sequence[str]) -> list[ModelVersion | None]:
        """``production_version`` of each name, batched: every pointer in one read, then every
        holder in one, in the same order as one name's read (so the same no-gap answer); a
        name whose holder is not yet in production (a hand-over under way), or that has no
        pointer, falls back to the newest version in production, as ``production_version`` does
        (one read for all such names)."""
        for name in model_names:
            validation.checked(text.check_name, name, "modelName")
        pointers = await self._versions.read_production_pointers(model_names)
        held = [p.model_id for p in pointers.values() if p.model_id is not None]
        holders = await self._versions.get_many_revisioned(held)
        answers: dict[str, ModelVersion | None] = {}
        for name, pointer in pointers.items():
            holder = None if pointer.model_id is None else holders.get(pointer.model_id)
            if holder is not None and holder.production_revision == pointer.revision:
                answers[name] = holder.version
        rest = [name for name in model_names if name not in answers]
        serving = await self._versions.newest_in_production_of(rest)
        return [answers[name] if name in answers else serving.get(name) for name in model_names]

    async def latest_version(self, model_name: str) -> ModelVersion | None:
        """The version of highest SemVer precedence (any status; build metadata ignored)."""
        validation.checked(text.check_name, model_name, "modelName")
        return await self._versions.latest(model_name)
