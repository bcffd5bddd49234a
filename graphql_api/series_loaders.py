"""Per-request DataLoaders of metric series: the series of every job in a selection (a compare
view of 20 jobs x 3 keys) are read in two round trips (summaries, then the buckets to open),
whatever the number of jobs and keys, and the keys of every job in one."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from graphql_api.domain.series import MetricSeries, SeriesRange
from graphql_api.services.container import Services


class SeriesLoaders:
    def __init__(self, services: Services) -> None:
        self._services = services
        self.keys: DataLoader[str, list[str]] = DataLoader(load_fn=self._load_keys)
        self._series: dict[SeriesRange, DataLoader[str, list[MetricSeries]]] = {}

    def series(self, where: SeriesRange) -> DataLoader[str, list[MetricSeries]]:
        """Series per job id; one loader (one batched read) per distinct argument set."""
        loader = self._series.get(where)
        if loader is None:

            async def load(job_ids: Sequence[str]) -> list[list[MetricSeries]]:
                found = await self._services.series.read(job_ids, where)
                return [found[j] for j in job_ids]

            loader = self._series[where] = DataLoader(load_fn=load)
        return loader

    async def _load_keys(self, job_ids: Sequence[str]) -> list[list[str]]:
        found = await self._services.series.keys(job_ids)
        return [found[j] for j in job_ids]
