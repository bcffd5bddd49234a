"""Per-request DataLoaders: every relation field is batched into one query per level.

A loader lives for one request (one GraphQL operation), so its cache never serves another
request's stale data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Hashable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from graphql_api.domain.errors import DomainError
from graphql_api.domain.events import StoredEvent
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import (
    DEFAULT_PAGE_SIZE,
    Page,
    PageRequest,
    TrainingJobFilter,
    TrainingJobOrder,
)
from graphql_api.live import cursor as log_cursor
from graphql_api.series_loaders import SeriesLoaders
from graphql_api.services.container import Services

JobPageArgs = tuple[TrainingJobFilter, TrainingJobOrder, int]
#: A history page: the sequence number it starts after, and ``first``.
HistoryPageArgs = tuple[int, int]


def history_page_args(first: int = DEFAULT_PAGE_SIZE, after: str | None = None) -> HistoryPageArgs:
    """``TrainingJob.history``'s arguments, checked (ValidationError naming the argument)."""
    return (0 if after is None else log_cursor.decode(after), PageRequest(first=first).first)


K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def now_or_later(loader: DataLoader[K, T], key: K) -> T | Awaitable[T]:
    """The loaded value at once if ``loader`` has it (a parent primed the batch), else the
    pending load. Returned from a plain (not async) resolver, a primed relation costs GraphQL no
    awaitable at all; an unprimed one is awaited as before, batched with its siblings."""
    pending = loader.load(key)
    if isinstance(pending, asyncio.Future) and pending.done():
        value: T = pending.result()  # raises the load's error, as awaiting it would
        return value
    return pending


class Loaders:
    """A request's loaders, each made on first use: most operations read one or two of them,
    and a WebSocket's context holds its ``Loaders`` for the connection's life (~5 KiB per idle
    subscriber when all were made up front; tracemalloc, bench/README.md)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._version_history_pages: dict[HistoryPageArgs, DataLoader[str, list[StoredEvent]]] = {}
        self._history_pages: dict[HistoryPageArgs, DataLoader[str, list[StoredEvent]]] = {}
        self._job_pages: dict[JobPageArgs, DataLoader[str, Page[TrainingJob]]] = {}
        self._job_counts: dict[TrainingJobFilter, DataLoader[str, int]] = {}

    @cached_property
    def model_version(self) -> DataLoader[str, ModelVersion | None]:
        return DataLoader(load_fn=self._load_model_versions)

    @cached_property
    def training_job(self) -> DataLoader[str, TrainingJob | None]:
        return DataLoader(load_fn=self._load_training_jobs)

    @cached_property
    def produced_model_versions(self) -> DataLoader[str, list[ModelVersion]]:
        return DataLoader(load_fn=self._load_produced_model_versions)

    @cached_property
    def aliases_of_model(self) -> DataLoader[str, dict[str, str]]:
        return DataLoader(load_fn=self._load_aliases)

    @cached_property
    def version_history_count(self) -> DataLoader[str, int]:
        return DataLoader(load_fn=self._load_version_history_counts)

    @cached_property
    def latest_of_model(self) -> DataLoader[str, ModelVersion | None]:
        return DataLoader(load_fn=self._services.models.latest)

    @cached_property
    def production_of_model(self) -> DataLoader[str, ModelVersion | None]:
        return DataLoader(load_fn=self._services.models.production)

    @cached_property
    def model_stats(self) -> DataLoader[str, tuple[int, datetime | None]]:
        return DataLoader(load_fn=self._load_model_stats)

    @cached_property
    def history_count(self) -> DataLoader[str, int]:
        return DataLoader(load_fn=self._load_history_counts)

    @cached_property
    def series(self) -> SeriesLoaders:
        return SeriesLoaders(self._services)

    def jobs_of_model(self, args: JobPageArgs) -> DataLoader[str, Page[TrainingJob]]:
        """Pages of jobs per model id; one loader (so one query) per distinct argument set."""
        loader = self._job_pages.get(args)
        if loader is None:
            where, order, first = args

            async def load(model_ids: Sequence[str]) -> list[Page[TrainingJob]]:
                pages = await self._services.training.list_per_model(model_ids, where, order, first)
                return [pages[m] for m in model_ids]

            loader = self._job_pages[args] = DataLoader(load_fn=load)
        return loader

    def job_count_of_model(self, where: TrainingJobFilter) -> DataLoader[str, int]:
        loader = self._job_counts.get(where)
        if loader is None:

            async def load(model_ids: Sequence[str]) -> list[int]:
                counts = await self._services.training.count_per_model(model_ids, where)
                return [counts[m] for m in model_ids]

            loader = self._job_counts[where] = DataLoader(load_fn=load)
        return loader

    def history_page(self, args: HistoryPageArgs) -> DataLoader[str, list[StoredEvent]]:
        """Pages of job histories (``first + 1`` events each, the extra one telling that a next
        page exists); one loader, so one batched read, per distinct (after, first)."""
        loader = self._history_pages.get(args)
        if loader is None:
            after_seq, first = args

            async def load(job_ids: Sequence[str]) -> list[list[StoredEvent]]:
                pages = await self._services.training.history_pages(job_ids, after_seq, first)
                return [pages[j] for j in job_ids]

            loader = self._history_pages[args] = DataLoader(load_fn=load)
        return loader

    def version_history_page(self, args: HistoryPageArgs) -> DataLoader[str, list[StoredEvent]]:
        """Pages of model version histories, as ``history_page`` is for jobs."""
        loader = self._version_history_pages.get(args)
        if loader is None:
            after_seq, first = args

            async def load(model_ids: Sequence[str]) -> list[list[StoredEvent]]:
                pages = await self._services.history.version_pages(model_ids, after_seq, first)
                return [pages[m] for m in model_ids]

            loader = self._version_history_pages[args] = DataLoader(load_fn=load)
        return loader

    def history_page_of(
        self, arguments: Mapping[str, Any]
    ) -> DataLoader[str, list[StoredEvent]] | None:
        """The loader for a ``history`` selection's arguments; None when they are invalid (the
        field itself then reports why)."""
        try:
            return self.history_page(history_page_args(**arguments))
        except (DomainError, TypeError):
            return None

    async def _load_history_counts(self, job_ids: Sequence[str]) -> list[int]:
        counts = await self._services.training.history_counts(list(job_ids))
        return [counts[j] for j in job_ids]

    async def _load_model_versions(self, model_ids: Sequence[str]) -> list[ModelVersion | None]:
        found = await self._services.registry.get_many(list(model_ids))
        return [found.get(m) for m in model_ids]

    async def _load_training_jobs(self, job_ids: Sequence[str]) -> list[TrainingJob | None]:
        found = await self._services.metadata.source_jobs(list(job_ids))
        return [found.get(j) for j in job_ids]

    async def _load_produced_model_versions(
        self, job_ids: Sequence[str]
    ) -> list[list[ModelVersion]]:
        found = await self._services.metadata.produced_by(list(job_ids))
        return [found[j] for j in job_ids]

    async def _load_aliases(self, model_names: Sequence[str]) -> list[dict[str, str]]:
        found = await self._services.aliases.aliases_by_name(list(model_names))
        return [found[n] for n in model_names]

    async def _load_version_history_counts(self, model_ids: Sequence[str]) -> list[int]:
        counts = await self._services.history.version_counts(list(model_ids))
        return [counts[m] for m in model_ids]

    async def _load_model_stats(
        self, model_names: Sequence[str]
    ) -> list[tuple[int, datetime | None]]:
        found = await self._services.models.stats(list(model_names))
        return [found[n] for n in model_names]
