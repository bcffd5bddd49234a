"""Per-request DataLoaders of metric series: the series of every job in a selection (a compare
view of 20 jobs x 3 keys) are read in two round trips (summaries, then the buckets to open),
whatever the number of jobs and keys, and the keys of every job in one."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.domain.series import MetricSeries, SeriesRange
from graphql_api.services.container import Services

#: Points all ``metricSeries`` fields of one request may return together: 100 jobs x 100
#: keys x 10,000 points would otherwise be one answer of 100,000,000 points.
MAX_POINTS_PER_REQUEST = 250_000


class SeriesLoaders:
    def __init__(self, services: Services) -> None:
        self._services = services
        #: Points the request's series fields returned so far.
        self.points_returned = 0
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

    def charge(self, found: list[MetricSeries]) -> None:
        """Count ``found``'s points against the request's budget; past it, a ValidationError
        on ``maxPoints`` (that field answers null with the error; nothing is cut silently)."""
        self.points_returned += sum(len(s.points) for s in found)
        if self.points_returned > MAX_POINTS_PER_REQUEST:
            raise ValidationError(
                "maxPoints",
                f"this request's metric series would return more than "
                f"{MAX_POINTS_PER_REQUEST:,} points in all: ask for fewer jobs or keys, or a "
                "smaller maxPoints",
                ValidationRule.max,
            )
