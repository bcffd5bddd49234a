"""The services of one running instance, built once over one storage."""

from __future__ import annotations

from dataclasses import dataclass

from graphql_api.services.inference import InferenceService
from graphql_api.services.registry import ModelRegistryService
from graphql_api.services.registry_aliases import ModelAliasService
from graphql_api.services.registry_history import ModelHistoryService
from graphql_api.services.registry_metadata import ModelMetadataService
from graphql_api.services.registry_models import ModelCatalogService
from graphql_api.services.registry_resolve import VersionResolver
from graphql_api.services.training import MLTrainingService
from graphql_api.storage.base import Storage


@dataclass(frozen=True)
class Services:
    storage: Storage
    registry: ModelRegistryService
    training: MLTrainingService
    inference: InferenceService
    metadata: ModelMetadataService
    aliases: ModelAliasService
    history: ModelHistoryService
    resolver: VersionResolver
    models: ModelCatalogService

    @classmethod
    def over(cls, storage: Storage) -> Services:
        inference = InferenceService(storage)
        return cls(
            storage=storage,
            registry=ModelRegistryService(storage),
            training=MLTrainingService(storage),
            inference=inference,
            metadata=ModelMetadataService(storage),
            aliases=ModelAliasService(storage, inference),
            history=ModelHistoryService(storage),
            resolver=VersionResolver(storage),
            models=ModelCatalogService(storage, inference),
        )
