"""The storage contract the services depend on.

Every method is one logical operation; the ones that change a record are atomic conditional
updates on its current status, so concurrent callers cannot both make the same transition.
Services describe a change with the typed changes of ``graphql_api.domain.updates``, never with
storage field names.

**Which errors storage raises.** A method reports an expected outcome by its result: None for a
record that is not there, or for a conditional update that found no record in an allowed status
(the service knows what the client asked for, so it picks NotFoundError or
InvalidTransitionError). The only domain errors storage raises are:

- ``ConflictError`` (``graphql_api.domain.errors``): with the field, when a write would break a
  uniqueness rule (``insert``); with no field or ``id``/``modelId``, when the server kept
  refusing a write only because of concurrent writers (deadlocks, claims held by others) after
  a bounded number of retries: the client may retry;
- ``ValidationError`` with field ``after`` and rule ``cursor``, from ``find``: a cursor that is
  not one this list returned.

Besides those, any method may raise ``DatabaseUnavailable`` (below) when the database is
unreachable or too slow: an implementation bounds every operation in time and never lets its
driver's errors out. A metrics merge that would take a stored record over its limit raises
``MergeLimitExceeded`` and writes nothing; the service turns it into the client's error.

Which version of a model name is in production is the name's ``ProductionPointer``, not a
status: see ``graphql_api.services.registry`` for how statuses follow it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from graphql_api.domain.enums import JobHealth, ModelStatus, TrainingStatus
from graphql_api.domain.events import ChangeEvent, ChangeKind, LogEntry, StoredEvent
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import (
    MetricOrder,
    ModelVersionFilter,
    ModelVersionOrder,
    Page,
    PageRequest,
    TrainingJobFilter,
    TrainingJobOrder,
)
from graphql_api.domain.updates import Change
from graphql_api.storage.api_keys import ApiKeyStore
from graphql_api.storage.series import MetricSeriesStore
from graphql_api.storage.webhooks import WebhookStore

R = TypeVar("R")
W = TypeVar("W", contravariant=True)
O = TypeVar("O", contravariant=True)  # noqa: E741 (the order, beside R and W)


class MergeLimitExceeded(Exception):
    """A merge would leave the stored record with more than ``limit`` keys in ``field``; the
    caller turns it into the error its client sees. Nothing was written."""

    def __init__(self, field: str, stored: int, merged: int, limit: int) -> None:
        super().__init__(f"{field}: {stored} stored, {merged} after the merge, limit {limit}")
        self.field = field
        self.stored = stored
        self.merged = merged
        self.limit = limit


class RecordBusy(Exception):
    """An update recording a ``PendingChange`` found the record in a status it allows (and
    meeting its other conditions), but did not apply: another change's event is pending, or
    was until a moment ago. The caller settles that change (relays its event) and tries again;
    nothing was written."""

    def __init__(self, record_id: str) -> None:
        super().__init__(f"{record_id!r} has a change whose event is pending")
        self.record_id = record_id


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
    """The event of a change, written into the record's document by the very write that
    makes the change (its insert or its conditional update), and cleared once the event is in
    the log: a change and its event are one atomic write.

    While one is there the record cannot change again (``update`` matches nothing), so the
    stored record is the record as of that event, and whoever wants to change it next first
    appends this event (idempotent by ``event_id``) and clears it: each record's events are in
    the log in the order it changed, and a change whose writer died before appending its event
    gets it from the next writer or from the server's sweep (``graphql_api.services.outbox``).
    A one-entry outbox per record, for every change of model versions and training jobs.
    """

    event_id: str
    kind: ChangeKind
    previous_status: str | None
    occurred_at: datetime
    actor: str | None
    #: A change that leaves the status as it was: the event's previous status is the record's
    #: status (the record cannot change while this is pending).
    keeps_status: bool = False
    #: A rollback's: why, and the version it replaced in production.
    reason: str | None = None
    previous_model_id: str | None = None
    #: An alias move's (``ALIAS_SET``, ``ALIAS_DELETED``): the alias, and the version the event
    #: is about. An alias lives in its name's registry document, so its pending change is kept
    #: there (the document the move writes), not in the version's.
    alias: str | None = None
    model_id: str | None = None


@dataclass(frozen=True)
class Revisioned:
    """A model version with its storage revision, for an update that must not follow a change
    made by someone else after it was read (``update(..., at_revision=...)``)."""

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


class RecordStore(Protocol[R, W, O]):
    """What the stores of every kind of record answer alike."""

    async def get(self, record_id: str) -> R | None:
        """The record with key ``record_id``, or None if there is none."""

    async def get_many(self, record_ids: Sequence[str]) -> dict[str, R]:
        """The records with these keys, by key, in one round trip; keys with no record are
        absent from the result."""

    async def find(self, where: W, order: O | MetricOrder, page: PageRequest) -> Page[R]:
        """One page of the records matching ``where``, in ``order`` (or by a metric, records
        without it last: storage/mongo/metric_order.py): ``page.first`` of them
        after the cursor ``page.after`` (keyset: stable while records are added), with each
        record's cursor and whether a next page exists. ValidationError (field ``after``) if
        the cursor is not one of this list and order."""

    async def count(self, where: W) -> int:
        """How many records match ``where``."""


class OutboxStore(Protocol[R]):
    """The records' changes whose events are not yet in the log (``PendingChange``)."""

    async def pending_change(self, record_id: str) -> tuple[R, PendingChange] | None:
        """The record and its change whose event is not yet known to be in the log; None if
        it has none (or there is no such record)."""

    async def pending_before(self, before: datetime, limit: int) -> list[tuple[R, PendingChange]]:
        """Up to ``limit`` records whose pending change occurred before ``before``, oldest
        first, with it (the sweep for what a writer that died left behind)."""

    async def clear_pending(self, record_id: str, event_id: str) -> None:
        """Forget the pending change ``event_id`` (its event is in the log); idempotent, and
        not a change of the record (the revision stays)."""


class ModelVersionStore(
    RecordStore[ModelVersion, ModelVersionFilter, ModelVersionOrder],
    OutboxStore[ModelVersion],
    Protocol,
):
    async def insert(self, version: ModelVersion, pending: PendingChange | None = None) -> None:
        """Store a new version, with ``pending`` as its change whose event is not yet in the
        log. ConflictError (field ``modelId`` or ``version``) if its ``model_id``, its (name,
        version) or its (name, SemVer precedence) is taken: build metadata alone does not make
        a new version."""

    async def update(
        self,
        model_id: str,
        sources: Collection[ModelStatus],
        changes: Sequence[Change],
        *,
        at_revision: int | None = None,
        production_revision: int | None = None,
        before_production_revision: int | None = None,
        pending: PendingChange | None = None,
    ) -> ModelVersion | None:
        """Apply ``changes`` if the status is one of ``sources``; the version after, or None
        when no version matched (missing, another status, or a condition below failed).

        A change of status (a ``Move``), and any update with ``production_revision`` or
        ``pending``, also requires that no change is pending (see ``PendingChange``), and
        records ``pending`` as this change's; RecordBusy when the version meets every other
        condition but the update did not apply. ``at_revision``: only if the record is still at
        that revision. ``production_revision`` records the pointer revision at which a version
        reaches production; ``before_production_revision``: only if it reached production below
        that revision. The status alone does not make a version the production one: the
        pointer does. With no changes and no condition, only the revision is bumped (an update
        made with ``at_revision`` from an earlier read then matches nothing).

        A ``MetricsMerge`` takes no condition beyond ``sources``: MergeLimitExceeded (nothing
        written) if the stored metrics would number more than its limit, also when concurrent
        merges race. ConflictError (no field) after too many concurrent writers.
        """

    async def touch(self, model_id: str, sources: Collection[ModelStatus]) -> bool:
        """Bump the revision if the status is one of ``sources`` (no visible change), so that
        an ``update`` with ``at_revision`` from an earlier read matches nothing; whether it
        matched."""

    async def get_revisioned(self, model_id: str) -> Revisioned | None:
        """The version with its storage revision (for ``update(at_revision=...)``) and the
        pointer revision at which it reached production; None if there is no such version."""

    async def get_many_revisioned(self, model_ids: Sequence[str]) -> dict[str, Revisioned]:
        """``get_revisioned`` of many versions in one round trip, by id (absent: none)."""

    async def read_production_pointers(
        self, model_names: Sequence[str]
    ) -> dict[str, ProductionPointer]:
        """``read_production_pointer`` of many names in one round trip, by name (absent:
        none)."""

    async def latest_of(self, model_names: Sequence[str]) -> dict[str, ModelVersion]:
        """``latest`` of many names in two round trips, by name (absent: no version)."""

    async def latest(self, model_name: str) -> ModelVersion | None:
        """The name's version of highest SemVer precedence, whatever its status; None if the
        name has no version."""

    async def production_pointer(self, model_name: str) -> ProductionPointer:
        """The name's pointer. A name without one (never deployed, or stored before pointers
        existed) gets one created from the current statuses: the version in production, if any
        (idempotent under concurrent callers: one insert wins)."""

    async def read_production_pointer(self, model_name: str) -> ProductionPointer | None:
        """The pointer as stored, without creating it (readers); None if there is none."""

    async def move_production(
        self,
        pointer: ProductionPointer,
        model_id: str | None,
        *,
        first_holding: bool = False,
    ) -> ProductionPointer | None:
        """Compare-and-set: point the name's production at ``model_id`` (None: at nothing) if
        the pointer is still at ``pointer.revision``; the new pointer, or None when someone
        moved it first. ``first_holding``: only if ``model_id`` never held the pointer (a
        promotion decided on a read of the version from before it was deployed and displaced
        must not move production back to it). ConflictError (field ``modelId``) after too many
        concurrent movers."""

    async def release_holding(self, model_name: str, model_id: str) -> None:
        """Forget that ``model_id`` held the pointer (it never reached production then), so it
        may be deployed again; idempotent."""

    async def newest_in_production_of(self, model_names: Sequence[str]) -> dict[str, ModelVersion]:
        """``newest_in_production`` of many names in one round trip, by name (absent: none)."""

    async def newest_in_production(self, model_name: str) -> ModelVersion | None:
        """The version of the name with status production that reached it last: the one
        still serving while a deployment is under way, and the production version of a name
        stored before pointers existed. None if no version of the name is in production."""

    async def displaced_in_production(
        self, model_name: str, keep: str | None, before: int
    ) -> list[ModelVersion]:
        """Versions of the name with status production, other than ``keep``, that reached
        production at a pointer revision below ``before`` (or before pointers existed)."""

    async def produced_by(self, job_ids: Sequence[str]) -> dict[str, list[ModelVersion]]:
        """The versions each job produced (``source_job_id``), newest first, all of them."""

    async def count_produced_by(self, job_id: str) -> int:
        """How many versions name ``job_id`` as their source."""

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

    async def count_model_names(self, name_contains: str | None) -> int:
        """How many model names ``models`` would list with this filter."""

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
        *,
        pending: PendingChange | None = None,
    ) -> bool:
        """Compare-and-set on one alias of the name's registry document (which must exist):
        point it at ``model_id`` (None: delete it) if it names ``expected`` now (None: if it
        does not exist and the name has fewer than ``limit`` aliases). Whether it moved.
        With ``pending``: only if no alias change of the name is pending, recording ``pending``
        in the same write; RecordBusy when only that condition failed."""

    async def alias_pending_change(
        self, model_name: str
    ) -> tuple[ModelVersion, PendingChange] | None:
        """The name's alias change whose event is not yet in the log, with the version it is
        about (as stored now); None if there is none."""

    async def alias_pending_before(
        self, before: datetime, limit: int
    ) -> list[tuple[ModelVersion, PendingChange]]:
        """Up to ``limit`` alias changes pending since before ``before``, oldest first."""

    async def clear_alias_pending(self, model_name: str, event_id: str) -> None:
        """Forget the name's pending alias change ``event_id`` (its event is in the log)."""


class TrainingJobStore(
    RecordStore[TrainingJob, TrainingJobFilter, TrainingJobOrder],
    OutboxStore[TrainingJob],
    Protocol,
):
    async def insert(self, job: TrainingJob, pending: PendingChange | None = None) -> None:
        """Store a new job, with ``pending`` as its change whose event is not yet in the log.
        ConflictError (field ``jobId``) if its ``job_id`` is taken."""

    async def clear_relayed(self, relayed: Sequence[tuple[str, str]]) -> None:
        """``clear_pending`` of each (job id, event id), all in one round trip."""

    async def update(
        self,
        job_id: str,
        sources: Collection[TrainingStatus],
        changes: Sequence[Change],
        *,
        lease_token_hash: str | None = None,
        unclaimed_only: bool = False,
        lease_lapsed_before: datetime | None = None,
        health: JobHealth | None = None,
        cancel_requested: bool | None = None,
        pending: PendingChange | None = None,
        logged_event_id: str | None = None,
    ) -> TrainingJob | None:
        """Apply ``changes`` if the status is one of ``sources`` (and, with
        ``lease_token_hash``, the job's lease is still that one: fencing; with
        ``unclaimed_only``, no worker holds it; with ``lease_lapsed_before``, the lease
        expired before then; with ``health``, the job has that health; with
        ``cancel_requested``, a graceful cancel was (True) or was not (False) asked for); the
        job after, or None when no job matched (missing, in another status, or a condition
        failed). With ``pending``: only if no change is pending, and recording ``pending`` as
        this change's, in the same write; RecordBusy when the job meets every other condition
        but the update did not apply (a change pending). ``logged_event_id``: a pending change
        of the job whose event the caller knows is in the log, which this update may replace
        (its clearing left for later, ``clear_relayed``).

        With a ``MetricsMerge``: MergeLimitExceeded (nothing written) if the stored metrics
        would then number more than its limit, also when concurrent merges race.
        ConflictError (no field) after too many concurrent writers.
        """

    async def claim(
        self,
        queue: str,
        changes: Sequence[Change],
        *,
        max_attempts: int,
        model_ids: Collection[str] | None = None,
        pending: PendingChange | None = None,
        logged: Mapping[str, str] | None = None,
    ) -> TrainingJob | None:
        """Apply ``changes`` (a ``Move`` to RUNNING and a ``LeaseGrant``) to the oldest PENDING
        job of ``queue`` (by creation date, then id; with ``model_ids``, of those versions
        only), recording ``pending`` as its change (see ``update``); that job after, or None
        when the queue has no such PENDING job. RecordBusy (with the job's id) when the oldest
        candidate stays PENDING but blocked by its own change's pending event (a job just
        created): the caller relays that event and claims again. Each job is
        claimed by exactly one caller however many race: a claim is one conditional update on
        the job's status, and a caller that loses a job to another moves on to the next one.
        ConflictError (no field) after ``max_attempts`` lost races in a row. ``logged``: job
        id -> the id of its pending change whose event is known to be in the log (see
        ``update``'s ``logged_event_id``)."""

    async def lapsed(self, before: datetime, health: JobHealth, limit: int) -> list[TrainingJob]:
        """RUNNING jobs held by a worker (``worker_id`` set), of this ``health``, whose lease
        expired before ``before``, soonest expired first, at most ``limit`` (the sweep takes
        the rest on its next run)."""

    async def retries_due(self, now: datetime, limit: int) -> list[TrainingJob]:
        """FAILED jobs whose automatic next attempt is due by ``now``, at most ``limit``."""

    async def attempts(self, root: str, limit: int) -> list[TrainingJob]:
        """The chain of attempts that starts with job ``root``, by attempt, at most
        ``limit``."""

    async def cancels_due(self, now: datetime, limit: int) -> list[TrainingJob]:
        """RUNNING jobs whose graceful cancel's grace ran out before ``now``, at most
        ``limit``."""

    async def running_with_max_runtime(self, limit: int) -> list[TrainingJob]:
        """RUNNING jobs that have a ``max_runtime_seconds``, longest running first, at most
        ``limit`` (the sweep: which of them ran past it)."""

    async def find_per_model(
        self,
        model_ids: Sequence[str],
        where: TrainingJobFilter,
        order: TrainingJobOrder,
        first: int,
    ) -> dict[str, Page[TrainingJob]]:
        """The first page (``first`` jobs) of each model's jobs matching ``where``, in
        ``order``, for all ``model_ids`` in one round trip; every id has an entry."""

    async def count_per_model(
        self, model_ids: Sequence[str], where: TrainingJobFilter
    ) -> dict[str, int]:
        """How many jobs of each model match ``where``, in one round trip; every id has an
        entry."""


class EventStore(Protocol):
    """The change log. Sequence numbers are unique and increase with every append, but
    concurrent appends may become visible out of order (seq 11 before seq 10), and a writer
    that dies between taking a number and writing leaves a hole: readers that must not skip an
    event read with ``entries_after`` and ``seal`` holes (see ``graphql_api.live.tailer``).

    No method raises a domain error; an event stored in a shape this version cannot read is
    skipped or kept in its place as an ``UnreadableEvent``, as each method says, never raised."""

    async def append(self, event: ChangeEvent) -> ChangeEvent:
        """Store ``event`` with the next sequence number (its ``seq`` is ignored).

        Idempotent by ``event.event_id``: appending an event whose id is already stored (a
        retry of an append that landed) returns the stored event. RuntimeError (an unexpected
        error, masked for clients) if no sequence number could be had after a bounded number
        of attempts; the caller (``services.changes``) retries the append.
        """

    async def has_event(self, event_id: str) -> bool:
        """Whether the event with this ``event_id`` is in the log (one indexed read)."""

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


class LeaderStore(Protocol):
    """Leader leases: which instance does a job that exactly one instance may do at a time
    (the liveness sweep, webhook deliveries)."""

    async def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``until``: True if ``holder``
        holds it now (it held it, or the lease was free or had expired by ``now``), False if
        another holder's lease runs past ``now``. Concurrent callers: at most one gets True."""

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up if ``holder`` has it (a clean shutdown: another takes over at
        once); idempotent."""


@dataclass
class StoreStats:
    """Database round trips made so far; tests pin the cost of queries with it. Work the
    server does in the background (the liveness sweep: ``uncounted``) is not counted, so a
    request's count stays exact while the sweep runs beside it."""

    round_trips: int = 0


#: Set in a background task (``uncounted``): its round trips are no request's cost.
_UNCOUNTED: ContextVar[bool] = ContextVar("mltrain_uncounted_round_trips", default=False)


def uncounted() -> None:
    """Leave the round trips of the current task (and tasks it starts) out of StoreStats."""
    _UNCOUNTED.set(True)


def counted() -> bool:
    return not _UNCOUNTED.get()


class Storage(Protocol):
    @property
    def model_versions(self) -> ModelVersionStore:
        """The model versions and each name's production pointer."""

    @property
    def training_jobs(self) -> TrainingJobStore:
        """The training jobs."""

    @property
    def events(self) -> EventStore:
        """The change log."""

    @property
    def leaders(self) -> LeaderStore:
        """Leader leases between server instances."""

    @property
    def metric_series(self) -> MetricSeriesStore:
        """The jobs' per-step metric series (see ``storage.series``)."""

    @property
    def api_keys(self) -> ApiKeyStore:
        """API keys issued while running (stored hashed; see ``storage.api_keys``)."""

    @property
    def webhooks(self) -> WebhookStore:
        """Webhooks and their delivery log (see ``storage.webhooks``)."""

    @property
    def stats(self) -> StoreStats:
        """The round trips made so far (tests and benchmarks count them)."""

    async def ensure_indexes(self) -> None:
        """Start-up: learn what the server guarantees and create the indexes (idempotent; also
        brings documents of older versions up to the current rules). DatabaseUnavailable if the
        server cannot be reached."""

    async def ping(self) -> None:
        """Return once the database answers (health checks), within a second;
        DatabaseUnavailable otherwise."""

    async def close(self) -> None:
        """Release the connections; the storage is not used afterwards."""
