"""The registry's models: one entry per model name, what a registry viewer lists first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from graphql_api.domain import text, validation
from graphql_api.domain.models import ModelVersion
from graphql_api.domain.queries import Page, PageRequest
from graphql_api.services.inference import InferenceService
from graphql_api.storage.base import Storage


class ModelCatalogService:
    def __init__(self, storage: Storage, inference: InferenceService) -> None:
        self._versions = storage.model_versions
        self._inference = inference

    async def names(self, name_contains: str | None, page: PageRequest) -> Page[str]:
        return await self._versions.model_names(self._checked(name_contains), page)

    async def count(self, name_contains: str | None) -> int:
        return await self._versions.count_model_names(self._checked(name_contains))

    async def stats(self, names: Sequence[str]) -> dict[str, tuple[int, datetime | None]]:
        """Per name: how many versions, the latest deployedDate (one round trip)."""
        return await self._versions.model_stats(names)

    async def latest(self, names: Sequence[str]) -> list[ModelVersion | None]:
        for name in names:
            validation.checked(text.check_name, name, "modelName")
        latest = await self._versions.latest_of(names)
        return [latest.get(name) for name in names]

    async def production(self, names: Sequence[str]) -> list[ModelVersion | None]:
        return await self._inference.production_versions(names)

    @staticmethod
    def _checked(name_contains: str | None) -> str | None:
        if name_contains is None:
            return None
        return validation.checked(text.check_name, name_contains, "filter.nameContains")
