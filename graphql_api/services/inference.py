"""InferenceService: what an inference service asks the registry."""

from __future__ import annotations

from graphql_api.domain import text, validation
from graphql_api.domain.models import ModelVersion
from graphql_api.storage.base import Storage


class InferenceService:
    def __init__(self, storage: Storage) -> None:
        self._versions = storage.model_versions

    async def production_version(self, model_name: str) -> ModelVersion | None:
        """The one version of ``model_name`` in production, if any."""
        validation.checked(text.check_name, model_name, "modelName")
        return await self._versions.production(model_name)

    async def latest_version(self, model_name: str) -> ModelVersion | None:
        """The version of highest SemVer precedence (any status; build metadata ignored)."""
        validation.checked(text.check_name, model_name, "modelName")
        return await self._versions.latest(model_name)
