"""The storage contract the services depend on.

Every method is one logical operation; the ones that change a record are atomic conditional
updates on its current status, so concurrent callers cannot both make the same transition.
An implementation raises ``graphql_api.domain.errors.ConflictError`` (with the field) when a
write would break a uniqueness rule, or (with no field) when the server kept refusing a write
only because of concurrent writers (a deadlock) after a bounded number of retries, and returns
``None`` when a conditional update finds no record in an allowed status; it never raises any
other domain error.

Which version of a model name is in production is the name's ``ProductionPointer``, not a
status: see ``graphql_api.services.registry`` for how statuses follow it.

A merge that would take a stored record over a limit the caller passed raises
``MergeLimitExceeded`` and writes nothing.

Any method may raise ``DatabaseUnavailable`` (below) when the database is unreachable or too
slow: an implementation bounds every operation in time and never lets its driver's errors out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from graphql_api.domain.enums import ModelStatus, TrainingStatus
from graphql_api.domain.events import ChangeEvent, ChangeKind, LogEntry, StoredEvent
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import (
    ModelVersionFilter,
    ModelVersionOrder,
    Page,
    PageRequest,
    TrainingJobFilter,
    TrainingJobOrder,
)


class MergeLimitExceeded(Exception):
    """A merge would leave the stored record with more than ``limit`` keys in ``field``; the
    caller turns it into the error its client sees. Nothing was written."""

    def __init__(self, field: str, stored: int, merged: int, limit: int) -> None:
        super().__init__(f"{field}: {stored} stored, {merged} after the merge, limit {limit}")
        self.field = field
        self.stored = stored
        self.merged = merged
        self.limit = limit


@dataclass(frozen=True)
class ProductionPointer:
    """The registry document of one model name: which version is in production.

    It is the single truth about production. It moves only by ``move_production``, one atomic
    compare-and-set on ``revision``, so concurrent deployments cannot interleave into a
    rollback; version statuses follow it (see ``ModelRegistryService``).
    """

    model_name: str
    #: The version in production, or None.
    model_id: str | None
    #: Bumped by every move; the compare-and-set compares it. Every move starts a new holding,
    #: so it also tells one holding of a version from another (0: a pointer created from the
    #: statuses of a database written before pointers existed).
    revision: int
    #: The holder this move displaced, if any.
    previous_model_id: str | None


@dataclass(frozen=True)
class PendingChange:
    """The event of a status change, written into the version's document by the very update
    that makes the change, and cleared once the event is in the log.

    While one is there the version's status cannot change again (``transition`` matches
    nothing), so whoever wants to change it next first appends this event (idempotent by
    ``event_id``) and clears it: each version's events are in the log in the order its status
    changed, and a change whose writer died before appending its event gets it from the next
    writer. A one-entry outbox per record; the general outbox is another issue's.
    """

    event_id: str
    kind: ChangeKind
    previous_status: str | None
    occurred_at: datetime
    actor: str | None
    #: A rollback's: why, and the version it replaced in production.
    reason: str | None = None
    previous_model_id: str | None = None


@dataclass(frozen=True)
class Revisioned:
    """A model version with its storage revision, for an update that must not follow a change
    made by someone else after it was read (``transition(..., at_revision=...)``)."""

    version: ModelVersion
    revision: int
    #: The pointer revision at which it reached production (0 if before pointers existed).
    production_revision: int | None = None


class DatabaseUnavailable(Exception):
    """The database could not be reached, or did not answer within the storage's bound.

    Any storage method may raise it. A read changed nothing; a write may or may not have been
    applied (it may have reached the server before the answer was lost), so clients retry
    writes the idempotent way (docs/retrying.md). ``reason`` is short and safe to show a
    client (``connection refused``, ``no answer within 3 s``); ``detail`` is the driver's
    own message, for the log.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


class DatabaseConfigError(ValueError):
    """The database settings cannot work (a malformed URI, an unknown option)."""


class ModelVersionStore(Protocol):
    async def insert(self, version: ModelVersion, pending: PendingChange | None = None) -> None:
        """Store a new version; ConflictError on a taken ``model_id``, (name, version) or
        (name, SemVer precedence): build metadata alone does not make a new version."""

    async def get(self, model_id: str) -> ModelVersion | None: ...

    async def get_many(self, model_ids: Sequence[str]) -> dict[str, ModelVersion]:
        """One round trip for any number of ids; missing ids are absent from the result."""

    async def find(
        self, where: ModelVersionFilter, order: ModelVersionOrder, page: PageRequest
    ) -> Page[ModelVersion]: ...

    async def count(self, where: ModelVersionFilter) -> int: ...

    async def production_pointer(self, model_name: str) -> ProductionPointer:
        """The name's production pointer. A name without one (never deployed, or stored before
        pointers existed) gets one created from the current statuses: the version in
        production, if any (idempotent under concurrent callers: one insert wins)."""

    async def read_production_pointer(self, model_name: str) -> ProductionPointer | None:
        """The pointer as stored, without creating it (readers)."""

    async def move_production(
        self,
        pointer: ProductionPointer,
        model_id: str | None,
        *,
        first_holding: bool = False,
    ) -> ProductionPointer | None:
        """Compare-and-set: point the name's production at ``model_id`` if the pointer is
        still at ``pointer.revision``; the new pointer, or None when someone moved it first.
        ``first_holding``: only if ``model_id`` never
        held the pointer (a promotion decided on a read of the version from before it was
        deployed and displaced must not move production back to it)."""

    async def release_holding(self, model_name: str, model_id: str) -> None:
        """Forget that ``model_id`` held the pointer (it never reached production then)."""

    async def newest_in_production(self, model_name: str) -> ModelVersion | None:
        """The version of the name with status production that reached it last: the one
        still serving while a deployment is under way, and the production version of a name
        stored before pointers existed."""

    async def get_revisioned(self, model_id: str) -> Revisioned | None: ...

    async def pending_change(self, model_id: str) -> tuple[ModelVersion, PendingChange] | None:
        """The version and its change whose event is not yet known to be in the log."""

    async def clear_pending(self, model_id: str, event_id: str) -> None:
        """Forget the pending change ``event_id`` (its event is in the log); idempotent."""

    async def touch(self, model_id: str, sources: Collection[ModelStatus]) -> bool:
        """Bump the revision if the status is one of ``sources`` (no visible change): an
        update made with ``at_revision`` from an earlier read then matches nothing."""

    async def displaced_in_production(
        self, model_name: str, keep: str | None, before: int
    ) -> list[ModelVersion]:
        """Versions of the name with status production, other than ``keep``, that reached
        production at a pointer revision below ``before`` (or before pointers existed)."""

    async def latest(self, model_name: str) -> ModelVersion | None:
        """The name's version of highest SemVer precedence, whatever its status."""

    async def transition(
        self,
        model_id: str,
        sources: Collection[ModelStatus],
        target: ModelStatus,
        changes: Mapping[str, Any] | None = None,
        *,
        at_revision: int | None = None,
        production_revision: int | None = None,
        before_production_revision: int | None = None,
        pending: PendingChange | None = None,
    ) -> ModelVersion | None:
        """Move to ``target`` if the status is one of ``sources`` and no change is pending
        (see ``PendingChange``), recording ``pending`` as this change's; return the result.

        ``at_revision``: only if the record is still at that revision. ``production_revision``
        records the pointer revision at which a version reaches production;
        ``before_production_revision``: only if it reached production below that revision.
        The status alone does not make a version the production one: the pointer does.
        """

    async def merge_metrics(
        self,
        model_id: str,
        metrics: Mapping[str, float],
        allowed: Collection[ModelStatus],
        limit: int,
    ) -> ModelVersion | None:
        """Merge ``metrics`` if the status is one of ``allowed``; MergeLimitExceeded (nothing
        written) if the stored metrics would then number more than ``limit``, also when
        concurrent merges race."""

    async def update_fields(
        self, model_id: str, allowed: Collection[ModelStatus], changes: Mapping[str, Any]
    ) -> ModelVersion | None:
        """Set stored fields (description, tags, artifact) if the status is one of
        ``allowed``; bumps the revision. None if it is not (or there is no such version)."""

    async def produced_by(self, job_ids: Sequence[str]) -> dict[str, list[ModelVersion]]:
        """The versions each job produced (``source_job_id``), newest first, all of them."""

    async def count_produced_by(self, job_id: str) -> int: ...

    async def by_precedence(
        self,
        model_name: str,
        statuses: Collection[ModelStatus],
        below: tuple[str, str] | None,
        limit: int,
    ) -> list[ModelVersion]:
        """The name's versions in ``statuses``, highest SemVer precedence first (then id),
        after ``below`` (a version's sort key and id); at most ``limit``."""

    async def add_model_name(self, model_name: str) -> None:
        """Record the name in the list of models (idempotent)."""

    async def model_names(self, name_contains: str | None, page: PageRequest) -> Page[str]:
        """Model names in code point order, a keyset page (``models``)."""

    async def count_model_names(self, name_contains: str | None) -> int: ...

    async def model_stats(
        self, model_names: Sequence[str]
    ) -> dict[str, tuple[int, datetime | None]]:
        """Per name: its number of versions and latest ``deployed_date``, one round trip."""

    async def aliases_of(self, model_names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each name's aliases (alias -> model id) in one round trip; {} for a name without."""

    async def move_alias(
        self,
        model_name: str,
        alias: str,
        model_id: str | None,
        expected: str | None,
        limit: int,
    ) -> bool:
        """Compare-and-set on one alias of the name's registry document (which must exist):
        point it at ``model_id`` (None: delete it) if it names ``expected`` now (None: if it
        does not exist and the name has fewer than ``limit`` aliases). Whether it moved."""


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
        metrics_limit: int | None = None,
    ) -> TrainingJob | None:
        """Apply ``changes`` (and merge metrics) if the status is one of ``allowed``.

        With ``metrics_limit``, MergeLimitExceeded (nothing written) if the stored metrics would
        then number more than that, also when concurrent merges race.
        """


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

    async def page_for_model(self, model_name: str, after: int, first: int) -> list[StoredEvent]:
        """The model name's events (all its versions) above ``after``, oldest first: ``first``
        and one more when a next page exists."""

    async def count_for_model(self, model_name: str) -> int: ...

    async def since(self, seq: int, limit: int) -> list[StoredEvent]:
        """Events with a sequence number above ``seq``, in sequence order (holes skipped,
        unreadable events kept in their place)."""

    async def entries_after(self, seq: int, limit: int) -> list[LogEntry]:
        """Events and sealed holes above ``seq``, in sequence order."""

    async def seal(self, seq: int) -> StoredEvent | None:
        """Close the hole at ``seq`` for good, unless an event holds it: then return that."""

    async def head(self) -> int:
        """The highest sequence number stored (0 for an empty log)."""

    async def floor(self) -> int:
        """The retention floor: events up to it may have been deleted, so a cursor below it
        has expired (0: nothing deleted). It only rises, and rises before any deletion."""

    async def trim(
        self, older_than: datetime | None, beyond: int | None, keep: int, batch: int
    ) -> int:
        """One bounded retention step: raise the floor over events that occurred before
        ``older_than`` and over all but the newest ``beyond`` sequence numbers (None: no such
        limit), at most ``batch`` numbers past the current floor and never into the newest
        ``keep``; then delete everything up to it. Returns the floor. Safe to run from several
        instances at once (the floor only rises; deleting twice deletes nothing more)."""


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
