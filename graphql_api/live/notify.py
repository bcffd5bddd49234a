"""The in-process wake-up: a storage whose event appends are also handed to the live feed.

Wrapping the storage (rather than teaching the services about the feed) keeps the services
unaware of subscriptions: whatever appends an event through this storage wakes the feed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from graphql_api.domain.events import ChangeEvent, LogEntry, StoredEvent
from graphql_api.storage.api_keys import ApiKeyStore
from graphql_api.storage.base import (
    EventStore,
    LeaderStore,
    ModelVersionStore,
    Storage,
    StoreStats,
    TrainingJobStore,
)
from graphql_api.storage.series import MetricSeriesStore
from graphql_api.storage.webhooks import WebhookStore


class NotifyingEventStore:
    """An ``EventStore`` that reports each successful append to ``on_append``."""

    def __init__(self, inner: EventStore, on_append: Callable[[ChangeEvent], None]) -> None:
        self._inner = inner
        self._on_append = on_append

    async def append(self, event: ChangeEvent) -> ChangeEvent:
        stored = await self._inner.append(event)
        self._on_append(stored)
        return stored

    async def has_event(self, event_id: str) -> bool:
        return await self._inner.has_event(event_id)

    async def for_entity(self, entity_id: str, limit: int) -> list[ChangeEvent]:
        return await self._inner.for_entity(entity_id, limit)

    async def page_for_entities(
        self, entity_ids: Sequence[str], after: int, first: int
    ) -> dict[str, list[StoredEvent]]:
        return await self._inner.page_for_entities(entity_ids, after, first)

    async def count_for_entities(self, entity_ids: Sequence[str]) -> dict[str, int]:
        return await self._inner.count_for_entities(entity_ids)

    async def page_for_model(self, model_name: str, after: int, first: int) -> list[StoredEvent]:
        return await self._inner.page_for_model(model_name, after, first)

    async def count_for_model(self, model_name: str) -> int:
        return await self._inner.count_for_model(model_name)

    async def since(self, seq: int, limit: int) -> list[StoredEvent]:
        return await self._inner.since(seq, limit)

    async def entries_after(self, seq: int, limit: int) -> list[LogEntry]:
        return await self._inner.entries_after(seq, limit)

    async def seal(self, seq: int) -> StoredEvent | None:
        return await self._inner.seal(seq)

    async def head(self) -> int:
        return await self._inner.head()

    async def floor(self) -> int:
        return await self._inner.floor()

    async def trim(
        self, older_than: datetime | None, beyond: int | None, keep: int, batch: int
    ) -> int:
        return await self._inner.trim(older_than, beyond, keep, batch)


class NotifyingStorage:
    """``storage`` with its event store wrapped; everything else is the storage's own."""

    def __init__(self, storage: Storage, on_append: Callable[[ChangeEvent], None]) -> None:
        self.inner = storage
        self.model_versions: ModelVersionStore = storage.model_versions
        self.training_jobs: TrainingJobStore = storage.training_jobs
        self.events: EventStore = NotifyingEventStore(storage.events, on_append)
        self.metric_series: MetricSeriesStore = storage.metric_series
        self.stats: StoreStats = storage.stats
        self.leaders: LeaderStore = storage.leaders
        self.api_keys: ApiKeyStore = storage.api_keys
        self.webhooks: WebhookStore = storage.webhooks

    async def ensure_indexes(self) -> None:
        await self.inner.ensure_indexes()

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()
