"""Appending change events to the log, for the outbox relay (``services.outbox``).

A change is written together with its pending event (one write of the record); the relay
appends the event here. So that a passing database hiccup does not leave the event waiting
for the sweep, the append is retried with backoff; the event's ``event_id`` makes the retries
(and every other relay of the same change) idempotent. A crash between the change and the
append leaves the event pending in the record, where the next writer of that record or the
server's sweep finds it: see docs/subscriptions.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import datetime

from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.values import utc_now
from graphql_api.storage.base import EventStore, PendingChange

log = logging.getLogger("mltrain.changes")

#: Fields an event's snapshot leaves out: they never change once the record exists, so the
#: record itself has their value as of any event, and they can be large (hyperparameters are
#: up to about 1 MB: copying them into every event grew the log by 46 MB for 50 small metric
#: reports). Subscriptions read them from the record when a selection asks for them.
IMMUTABLE_FIELDS = {"hyperparameters"}
#: Fields no event carries: the hash of a job's lease token fences the worker's writes
#: (domain.leases), and subscribers have no use for it.
INTERNAL_FIELDS = {"lease_token_hash"}

#: Attempts at appending one event, and the first pause between them (doubling): about 1.5 s.
APPEND_ATTEMPTS = 5
FIRST_RETRY_DELAY = 0.1


class ChangeRecorder:
    def __init__(self, events: EventStore) -> None:
        self._events = events

    async def pending_job(self, job: TrainingJob, pending: PendingChange) -> ChangeEvent:
        """The event of the job's pending change (``services.outbox``), with its id and time."""
        return await self.job(
            job,
            pending.kind,
            job.status.value if pending.keeps_status else pending.previous_status,
            pending.actor,
            event_id=pending.event_id,
            occurred_at=pending.occurred_at,
        )

    async def pending_version(self, version: ModelVersion, pending: PendingChange) -> ChangeEvent:
        """The event of the version's pending change (``services.outbox``)."""
        return await self.model_version(
            version,
            pending.kind,
            version.status.value if pending.keeps_status else pending.previous_status,
            pending.actor,
            event_id=pending.event_id,
            occurred_at=pending.occurred_at,
            reason=pending.reason,
            previous_model_id=pending.previous_model_id,
            alias=pending.alias,
        )

    async def job(
        self,
        job: TrainingJob,
        kind: ChangeKind,
        previous_status: str | None,
        actor: str | None,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> ChangeEvent:
        return await self._append(
            ChangeEvent(
                seq=0,
                entity=EntityKind.TRAINING_JOB,
                entity_id=job.job_id,
                kind=kind,
                previous_status=previous_status,
                status=job.status.value,
                occurred_at=occurred_at or utc_now(),
                event_id=event_id,
                model_id=job.model_id,
                actor=actor,
                snapshot=job.model_dump(mode="python", exclude=IMMUTABLE_FIELDS | INTERNAL_FIELDS),
            )
        )

    async def model_version(
        self,
        version: ModelVersion,
        kind: ChangeKind,
        previous_status: str | None,
        actor: str | None,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
        alias: str | None = None,
        previous_model_id: str | None = None,
        reason: str | None = None,
    ) -> ChangeEvent:
        """``event_id`` and ``occurred_at``: of a change recorded with the record before its
        event (the registry's pending changes), so that whoever appends it appends the same."""
        return await self._append(
            ChangeEvent(
                seq=0,
                entity=EntityKind.MODEL_VERSION,
                entity_id=version.model_id,
                kind=kind,
                previous_status=previous_status,
                status=version.status.value,
                occurred_at=occurred_at or utc_now(),
                event_id=event_id,
                model_id=version.model_id,
                model_name=version.model_name,
                actor=actor,
                snapshot=version.model_dump(mode="python"),
                alias=alias,
                previous_model_id=previous_model_id,
                reason=reason,
            )
        )

    async def _append(self, event: ChangeEvent) -> ChangeEvent:
        event = event.model_copy(update={"event_id": event.event_id or uuid.uuid4().hex})
        delay = FIRST_RETRY_DELAY
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            try:
                return await self._events.append(event)
            except Exception:
                if attempt == APPEND_ATTEMPTS:
                    # The change is made and its event waits in the record, for the next
                    # writer of the record or the server's sweep (``services.outbox``).
                    log.error(
                        "appending an event failed %d times; it stays pending in its record "
                        "for the outbox sweep: %s",
                        attempt,
                        event.model_dump_json(),
                    )
                    raise
                log.warning(
                    "appending the event of %s %s failed (attempt %d); retrying",
                    event.entity.value,
                    event.entity_id,
                    attempt,
                    exc_info=True,
                )
                # Jittered: writers that collided (a deadlock) should not meet again.
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay *= 2
        raise AssertionError("unreachable")
