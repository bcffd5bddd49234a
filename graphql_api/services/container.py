"""The services of one running instance, built once over one storage."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from graphql_api.domain.api_keys import ROLE_NAMES
from graphql_api.services.api_keys import ApiKeyService
from graphql_api.services.inference import InferenceService
from graphql_api.services.metric_series import MetricSeriesService
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
    series: MetricSeriesService
    api_keys: ApiKeyService
    metadata: ModelMetadataService
    aliases: ModelAliasService
    history: ModelHistoryService
    resolver: VersionResolver
    models: ModelCatalogService

    @classmethod
    def over(cls, storage: Storage, configured_key_names: Collection[str] = ()) -> Services:
        inference = InferenceService(storage)
        return cls(
            storage=storage,
            api_keys=ApiKeyService(storage.api_keys, ROLE_NAMES, configured_key_names),
            registry=ModelRegistryService(storage),
            training=MLTrainingService(storage),
            inference=inference,
            series=MetricSeriesService(storage),
            metadata=ModelMetadataService(storage),
            aliases=ModelAliasService(storage, inference),
            history=ModelHistoryService(storage),
            resolver=VersionResolver(storage),
            models=ModelCatalogService(storage, inference),
        )
