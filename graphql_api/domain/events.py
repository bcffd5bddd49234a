"""The change log: one event per change of a training job or a model version.

Services append an event for every change they make; the log answers ``history`` queries and
feeds live subscriptions. ``seq`` is assigned by storage and increases with every append.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class EntityKind(StrEnum):
    TRAINING_JOB = "TrainingJob"
    MODEL_VERSION = "ModelVersion"


class ChangeKind(StrEnum):
    """What happened. Job kinds first, then registry kinds."""

    CREATED = "CREATED"
    STARTED = "STARTED"
    CLAIMED = "CLAIMED"
    RECOVERED = "RECOVERED"
    LATE = "LATE"
    LOST = "LOST"
    TIMED_OUT = "TIMED_OUT"
    RETRIED = "RETRIED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCEL_ACKNOWLEDGED = "CANCEL_ACKNOWLEDGED"
    CANCEL_FORCED = "CANCEL_FORCED"
    METRICS_REPORTED = "METRICS_REPORTED"
    LOGS_URL_SET = "LOGS_URL_SET"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REGISTERED = "REGISTERED"
    PROMOTED = "PROMOTED"
    DEPLOYED = "DEPLOYED"
    ARCHIVED = "ARCHIVED"
    METRICS_UPDATED = "METRICS_UPDATED"
    #: Description, tags or (in development) the artifact changed: updateModelVersion.
    UPDATED = "UPDATED"
    #: An alias (``ChangeEvent.alias``) now names this version; ``previous_model_id`` is the
    #: version it named before, if any.
    ALIAS_SET = "ALIAS_SET"
    #: The alias that named this version was deleted.
    ALIAS_DELETED = "ALIAS_DELETED"


class ChangeEvent(BaseModel):
    """One recorded change. ``snapshot`` is the record as it was right after the change, less
    the fields that never change after creation and can be large (a job's
    ``hyperparameters``): those are read from the record itself, which is the same answer (see
    ``services.changes.IMMUTABLE_FIELDS`` and docs/subscriptions.md)."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    seq: int
    entity: EntityKind
    entity_id: str
    kind: ChangeKind
    previous_status: str | None
    status: str
    occurred_at: datetime
    model_id: str
    model_name: str | None = None
    actor: str | None = None
    snapshot: dict[str, Any]
    #: Unique per change, set by the recorder: a retried append that had in fact landed is
    #: recognised by it instead of being stored twice under two sequence numbers.
    event_id: str | None = None
    # Registry moves (issue 14); absent from other events and from events stored before.
    #: The alias an ALIAS_SET / ALIAS_DELETED event is about.
    alias: str | None = None
    #: The version the alias (or production, for a rollback) named before this change.
    previous_model_id: str | None = None
    #: Why, as the client said (a rollback's reason).
    reason: str | None = None


@dataclass(frozen=True)
class SealedSeq:
    """A sequence number that was taken but never written (its writer died in between).

    A reader of the log seals such a hole after a grace period so that no late writer can fill
    it behind the reader's back; the writer then takes a new number instead.
    """

    seq: int


@dataclass(frozen=True)
class UnreadableEvent:
    """A stored event whose header (kind, status, time, ...) cannot be read: corrupt or written
    by an incompatible version. Readers never fail on it: subscriptions deliver an explicit
    ``EVENT_UNREADABLE`` marker in its place and ``history`` shows a null node with that error,
    and both continue past it. ``entity``/``entity_id`` are kept when they could be read."""

    seq: int
    entity: EntityKind | None
    entity_id: str | None
    reason: str


#: An event as read back from the log: readable or not, it keeps its place in the order.
StoredEvent = ChangeEvent | UnreadableEvent

#: What the log holds at one sequence number.
LogEntry = ChangeEvent | UnreadableEvent | SealedSeq
