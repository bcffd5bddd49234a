"""The relay of the per-record outbox: moving a record's pending change into the change log.

Every change of a model version or a training job is written together with its event's
header (``PendingChange``) in one write of the record (``storage.mongo.outbox``). The relay
appends that event to the log, idempotently by its ``event_id`` (fixed when the change was
written, so every relay of it appends the same event), and then clears it. It runs:

- on write, in the request path (``publish``), right after the change: the usual case, which
  keeps an event's latency what it was;
- when a writer finds the record blocked by someone else's pending change (``settle``): the
  change's own writer is given ``grace`` seconds first, then the event is relayed here;
- in the background (``sweep``, run by ``graphql_api.live.relay``): whatever a crash (or a
  database outage longer than the append's retries) left pending for longer than ``grace``.

A record cannot change while its change is pending, so the record as stored is the record as
of that event, and its events reach the log in the order it changed, whoever relays them;
two relays of one event (two instances, or a relay after a crash) store it once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from graphql_api.domain.events import ChangeKind
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.values import utc_now
from graphql_api.services.changes import ChangeRecorder
from graphql_api.storage.base import ModelVersionStore, OutboxStore, PendingChange, Storage

log = logging.getLogger("mltrain.outbox")

#: How long a pending change's own writer is given to append its event before another writer
#: (or the sweep) does it instead: it normally takes a few milliseconds. Two relays of one
#: event racing cost a hole in the log's numbers (sealed by the feed), never a duplicate.
SETTLE_GRACE = 0.5
FIRST_SETTLE_DELAY = 0.002
MAX_SETTLE_DELAY = 0.05
#: Pending changes of others one change waits for before it gives up (a ConflictError).
#: Concurrent changes of one record take turns (one lands per turn, each waiting for the last
#: one's event): 10 left some of 20 concurrent metric reports of one job with a ConflictError.
MAX_SETTLE_ATTEMPTS = 100
#: Records one sweep step relays at most (the rest wait for the next step).
SWEEP_BATCH = 100
#: Jobs whose relayed event's pending change is left in the record, at most: the request that
#: reaches this many clears them all in one round trip (the outbox sweep clears them every
#: pass too). A clear per event was one of a claim's five round trips and of a mutation's four.
RELAYED_BATCH = 64
#: Relayed job events remembered at most while clearing them fails.
MAX_RELAYED = 16 * RELAYED_BATCH

R = TypeVar("R", ModelVersion, TrainingJob)


def new_pending(
    kind: ChangeKind, previous_status: str | None, actor: str | None, *, keeps_status: bool = False
) -> PendingChange:
    """The pending change of a write about to be made, with its event's id and time.
    ``keeps_status``: a change that leaves the status as it is (its event's previous status is
    the record's status, which the relay reads from the record)."""
    return PendingChange(
        event_id=uuid.uuid4().hex,
        kind=kind,
        previous_status=previous_status,
        occurred_at=utc_now(),
        actor=actor,
        keeps_status=keeps_status,
    )


@dataclass(frozen=True)
class _Lane(Generic[R]):
    """One kind of record: where its pending changes are, and how its events are appended."""

    name: str
    store: OutboxStore[R]
    append: Callable[[R, PendingChange], Awaitable[object]]
    key: Callable[[R], str]
    logged: Callable[[str], Awaitable[bool]]
    #: What the change's own writer does after its write and before relaying, redone by a relay
    #: of someone else's change (idempotent); None: nothing.
    after_write: Callable[[R, PendingChange], Awaitable[None]] | None = None


class Outbox:
    def __init__(self, storage: Storage, *, grace: float = SETTLE_GRACE) -> None:
        record = ChangeRecorder(storage.events)
        self._grace = grace
        self._job_store = storage.training_jobs
        #: Job id -> its pending change's event id, for jobs whose event this outbox appended
        #: and whose record still holds that change (its clearing is batched: ``publish_job``).
        self._relayed_jobs: dict[str, str] = {}
        #: A clearing is in flight (the request path does not start another meanwhile).
        self._clearing = False
        self._clearing_failed = False
        logged = storage.events.has_event
        self._jobs = _Lane[TrainingJob](
            "TrainingJob", storage.training_jobs, record.pending_job, lambda j: j.job_id, logged
        )
        self._versions = _Lane[ModelVersion](
            "ModelVersion",
            storage.model_versions,
            record.pending_version,
            lambda v: v.model_id,
            logged,
            _list_registered_name(storage.model_versions),
        )

        # Alias moves: pending in the name's registry document (the document a move writes).
        self._aliases = _Lane[ModelVersion](
            "model name",
            _AliasOutbox(storage.model_versions),
            record.pending_version,
            lambda v: v.model_name,
            logged,
        )

    async def publish_alias(self, version: ModelVersion, pending: PendingChange) -> None:
        await _publish(self._aliases, version, pending)

    async def settle_aliases(self, model_name: str) -> bool:
        return await self._settle(self._aliases, model_name)

    async def publish_job(self, job: TrainingJob, pending: PendingChange) -> None:
        """Append the job's pending event. Its record keeps the pending change for now: the
        next change this outbox's service makes to the job replaces it in its own write (the
        update accepts a pending change whose event is known to be logged:
        ``logged_job_events``), and the rest are cleared in batches (``clear_relayed_jobs``).
        A crash meanwhile loses nothing: a logged event's pending change is cleared by whoever
        finds it (``settle_job``, the sweep), which look the event up before appending."""
        await _publish(self._jobs, job, pending, clear=False)
        relayed = self._relayed_jobs
        relayed[job.job_id] = pending.event_id
        if len(relayed) >= RELAYED_BATCH and not (self._clearing or self._clearing_failed):
            await self.clear_relayed_jobs()
        if len(relayed) > MAX_RELAYED:
            # Clearing keeps failing (the database is away): forget the oldest; they are only
            # a shortcut, and the sweep clears them once they are older than the grace.
            for job_id in list(relayed)[: len(relayed) - MAX_RELAYED]:
                del relayed[job_id]

    @property
    def logged_job_events(self) -> Mapping[str, str]:
        """Job id -> the event id of its pending change known to be in the log."""
        return self._relayed_jobs

    async def clear_relayed_jobs(self) -> None:
        """Clear the pending changes of the jobs whose events were relayed, in one round trip.
        A failure is logged, not raised (the changes and their events are stored): the
        request path stops trying until the outbox sweep's next call succeeds."""
        batch = list(self._relayed_jobs.items())
        if not batch:
            return
        self._clearing = True
        try:
            await self._job_store.clear_relayed(batch)
        except Exception:
            self._clearing_failed = True
            log.warning(
                "clearing %d relayed job events failed; retried later", len(batch), exc_info=True
            )
        else:
            # Forgotten only now: a change of one of these jobs made while the clearing was
            # in flight still needs to know its event is logged (else it finds the job busy).
            for job_id, event_id in batch:
                if self._relayed_jobs.get(job_id) == event_id:
                    del self._relayed_jobs[job_id]
            self._clearing_failed = False
        finally:
            self._clearing = False

    async def publish_version(self, version: ModelVersion, pending: PendingChange) -> None:
        await _publish(self._versions, version, pending)

    async def settle_job(self, job_id: str) -> bool:
        return await self._settle(self._jobs, job_id)

    async def settle_version(self, model_id: str) -> bool:
        return await self._settle(self._versions, model_id)

    async def _settle(self, lane: _Lane[R], record_id: str) -> bool:
        """Make sure the record's pending change, if it has one, is in the log; whether there
        was one. Its writer appends it right after its write, so that is waited for first, a
        bounded time (many callers appending one event at once only collide: on DocumentDB,
        concurrent inserts of one unique key deadlock); after that the writer is taken to be
        gone, and the event is appended here."""
        found = await lane.store.pending_change(record_id)
        if found is None:
            return False
        record, pending = found
        delay, waited = FIRST_SETTLE_DELAY, 0.0
        # Waits for the event to be in the log, not for the clearing: a writer may leave its
        # logged change in the record for a while (``publish_job``); clearing it is then ours.
        while not await lane.logged(pending.event_id):
            if waited >= self._grace:
                # The record as it is now (writes without an event may have changed it).
                found = await lane.store.pending_change(record_id)
                if found is None:
                    return True
                record, pending = found
                log.warning(
                    "publishing the %s event of %s %s left pending by another writer",
                    pending.kind.value,
                    lane.name,
                    record_id,
                )
                await _publish(lane, record, pending, recheck=True)
                return True
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, MAX_SETTLE_DELAY)
        await lane.store.clear_pending(record_id, pending.event_id)
        return True

    async def sweep(self, batch: int = SWEEP_BATCH) -> int:
        """Relay the changes pending for longer than the grace (a writer that died); how many."""
        before = datetime.now(UTC) - timedelta(seconds=self._grace)
        return (
            await _sweep(self._versions, before, batch)
            + await _sweep(self._jobs, before, batch)
            + await _sweep(self._aliases, before, batch)
        )


def _list_registered_name(
    versions: ModelVersionStore,
) -> Callable[[ModelVersion, PendingChange], Awaitable[None]]:
    """A registration adds its name to the list of models (``models``) after its insert; a
    writer that died in between left the version without it, so the relay adds it."""

    async def after_write(version: ModelVersion, pending: PendingChange) -> None:
        if pending.kind is ChangeKind.REGISTERED:
            await versions.add_model_name(version.model_name)

    return after_write


class _AliasOutbox:
    """The registry documents' pending alias changes, as an ``OutboxStore`` of the versions
    they are about (keyed by model name)."""

    def __init__(self, versions: ModelVersionStore) -> None:
        self._versions = versions

    async def pending_change(self, record_id: str) -> tuple[ModelVersion, PendingChange] | None:
        return await self._versions.alias_pending_change(record_id)

    async def pending_before(
        self, before: datetime, limit: int
    ) -> list[tuple[ModelVersion, PendingChange]]:
        return await self._versions.alias_pending_before(before, limit)

    async def clear_pending(self, record_id: str, event_id: str) -> None:
        await self._versions.clear_alias_pending(record_id, event_id)


async def _sweep(lane: _Lane[R], before: datetime, batch: int) -> int:
    found = await lane.store.pending_before(before, batch)
    for record, pending in found:
        log.warning(
            "relaying the %s event of %s %s left pending since %s",
            pending.kind.value,
            lane.name,
            lane.key(record),
            pending.occurred_at.isoformat(),
        )
        await _publish(lane, record, pending, recheck=True)
    return len(found)


async def _publish(
    lane: _Lane[R], record: R, pending: PendingChange, *, recheck: bool = False, clear: bool = True
) -> None:
    """Append the event and clear it from the record. ``recheck`` (a relay of someone else's
    change): look for the event in the log first. A writer that died between its append and
    the clearing left an event that is already logged; appending it again would be refused
    by its id, but only after taking a sequence number, which leaves a hole that holds every
    subscriber back until the feed seals it (``MLTRAIN_FEED_GAP_GRACE``). ``clear`` False:
    the caller clears it later (``Outbox.publish_job``)."""
    if recheck and lane.after_write is not None:
        await lane.after_write(record, pending)
    if not (recheck and await lane.logged(pending.event_id)):
        await lane.append(record, pending)
    if clear:
        await lane.store.clear_pending(lane.key(record), pending.event_id)
