"""The storage contract the services depend on.

Every method is one logical operation; the ones that change a record are atomic conditional
updates on its current status, so concurrent callers cannot both make the same transition.
An implementation raises ``graphql_api.domain.errors.ConflictError`` (with the field) when a
write would break a uniqueness rule, and returns ``None`` when a conditional update finds no
record in an allowed status; it never raises any other domain error.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from graphql_api.domain.enums import ModelStatus, TrainingStatus
from graphql_api.domain.events import ChangeEvent, LogEntry, StoredEvent
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import (
    ModelVersionFilter,
    ModelVersionOrder,
    Page,
    PageRequest,
    TrainingJobFilter,
    TrainingJobOrder,
)


class ModelVersionStore(Protocol):
    async def insert(self, version: ModelVersion) -> None:
        """Store a new version; ConflictError on a taken ``model_id`` or (name, version)."""

    async def get(self, model_id: str) -> ModelVersion | None: ...

    async def get_many(self, model_ids: Sequence[str]) -> dict[str, ModelVersion]:
        """One round trip for any number of ids; missing ids are absent from the result."""

    async def find(
        self, where: ModelVersionFilter, order: ModelVersionOrder, page: PageRequest
    ) -> Page[ModelVersion]: ...

    async def count(self, where: ModelVersionFilter) -> int: ...

    async def production(self, model_name: str) -> ModelVersion | None: ...

    async def latest(self, model_name: str) -> ModelVersion | None:
        """The name's version of highest SemVer precedence, whatever its status."""

    async def transition(
        self,
        model_id: str,
        sources: Collection[ModelStatus],
        target: ModelStatus,
        changes: Mapping[str, Any] | None = None,
    ) -> ModelVersion | None:
        """Move to ``target`` if the status is one of ``sources``; return the result.

        Reaching PRODUCTION claims the model name's single production slot: ConflictError
        (field ``status``) while another version of the name holds it.
        """

    async def merge_metrics(
        self, model_id: str, metrics: Mapping[str, float], allowed: Collection[ModelStatus]
    ) -> ModelVersion | None: ...


class TrainingJobStore(Protocol):
    async def insert(self, job: TrainingJob) -> None: ...

    async def get(self, job_id: str) -> TrainingJob | None: ...

    async def get_many(self, job_ids: Sequence[str]) -> dict[str, TrainingJob]: ...

    async def find(
        self, where: TrainingJobFilter, order: TrainingJobOrder, page: PageRequest
    ) -> Page[TrainingJob]: ...

    async def count(self, where: TrainingJobFilter) -> int: ...

    async def find_per_model(
        self,
        model_ids: Sequence[str],
        where: TrainingJobFilter,
        order: TrainingJobOrder,
        first: int,
    ) -> dict[str, Page[TrainingJob]]:
        """The first page of each model's jobs, for all ``model_ids`` in one round trip."""

    async def count_per_model(
        self, model_ids: Sequence[str], where: TrainingJobFilter
    ) -> dict[str, int]: ...

    async def update(
        self,
        job_id: str,
        allowed: Collection[TrainingStatus],
        changes: Mapping[str, Any],
        merge_metrics: Mapping[str, float] | None = None,
    ) -> TrainingJob | None:
        """Apply ``changes`` (and merge metrics) if the status is one of ``allowed``."""


class EventStore(Protocol):
    """The change log. Sequence numbers are unique and increase with every append, but
    concurrent appends may become visible out of order (seq 11 before seq 10), and a writer
    that dies between taking a number and writing leaves a hole: readers that must not skip an
    event read with ``entries_after`` and ``seal`` holes (see ``graphql_api.live.tailer``)."""

    async def append(self, event: ChangeEvent) -> ChangeEvent:
        """Store ``event`` with the next sequence number (its ``seq`` is ignored).

        Idempotent by ``event.event_id``: appending an event whose id is already stored (a
        retry of an append that landed) returns the stored event.
        """

    async def for_entity(self, entity_id: str, limit: int) -> list[ChangeEvent]:
        """The entity's first ``limit`` readable events, oldest first."""

    async def page_for_entities(
        self, entity_ids: Sequence[str], after: int, first: int
    ) -> dict[str, list[StoredEvent]]:
        """Each entity's first ``first + 1`` events above ``after``, oldest first (the extra one
        tells a next page exists), batched: one round trip, plus one per entity whose page was
        crowded out of it by busier ones. Unreadable events keep their place."""

    async def count_for_entities(self, entity_ids: Sequence[str]) -> dict[str, int]:
        """How many events each entity has, in one round trip."""

    async def since(self, seq: int, limit: int) -> list[StoredEvent]:
        """Events with a sequence number above ``seq``, in sequence order (holes skipped,
        unreadable events kept in their place)."""

    async def entries_after(self, seq: int, limit: int) -> list[LogEntry]:
        """Events and sealed holes above ``seq``, in sequence order."""

    async def seal(self, seq: int) -> StoredEvent | None:
        """Close the hole at ``seq`` for good, unless an event holds it: then return that."""

    async def head(self) -> int:
        """The highest sequence number stored (0 for an empty log)."""


@dataclass
class StoreStats:
    """Database round trips made so far; tests pin the cost of queries with it."""

    round_trips: int = 0


class Storage(Protocol):
    @property
    def model_versions(self) -> ModelVersionStore: ...

    @property
    def training_jobs(self) -> TrainingJobStore: ...

    @property
    def events(self) -> EventStore: ...

    @property
    def stats(self) -> StoreStats: ...

    async def ensure_indexes(self) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
