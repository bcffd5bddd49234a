"""InferenceService: what an inference service asks the registry."""

from __future__ import annotations

from graphql_api.domain.enums import ModelStatus
from graphql_api.domain.models import ModelVersion
from graphql_api.storage.base import Storage


class InferenceService:
    def __init__(self, storage: Storage) -> None:
        self._versions = storage.model_versions

    async def production_version(self, model_name: str) -> ModelVersion | None:
        """The one version of ``model_name`` in production, if any: the production pointer's.

        During a hand-over the pointer already names the new version while its status is still
        being moved to production: until then the version it displaced is still serving, and is
        the answer. So a reader polling through a deployment sees the old version, then the new
        one, never none and never a version that is not in production.
        """
        pointer = await self._versions.read_production_pointer(model_name)
        if pointer is None:
            # Never deployed, or stored before pointers existed (the first deployment or
            # archive creates the pointer).
            return await self._versions.legacy_production(model_name)
        wanted = [i for i in (pointer.model_id, pointer.previous_model_id) if i is not None]
        found = await self._versions.get_many(wanted)
        for model_id in wanted:
            version = found.get(model_id)
            if version is not None and version.status is ModelStatus.PRODUCTION:
                return version
        return None

    async def latest_version(self, model_name: str) -> ModelVersion | None:
        """The version of highest SemVer precedence (any status; build metadata ignored)."""
        return await self._versions.latest(model_name)
