"""InferenceService: what an inference service asks the registry."""

from __future__ import annotations

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

    async def latest_version(self, model_name: str) -> ModelVersion | None:
        """The version of highest SemVer precedence (any status; build metadata ignored)."""
        validation.checked(text.check_name, model_name, "modelName")
        return await self._versions.latest(model_name)
