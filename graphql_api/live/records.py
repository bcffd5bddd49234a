"""The record an event carries (its ``snapshot``), as a domain model.

One event goes to many subscribers; each shows the record, so it is parsed once per event and
kept in a small cache while the fan-out runs.

A snapshot is read *as recorded*: it is checked for the shape GraphQL needs to show it (field
types, a known status), not re-validated against today's limits, so a record written before a
limit tightened (300 metrics where 256 are allowed now) still reads. A snapshot that does not
have that shape (corrupt, or from an incompatible version) reads as ``None``, and the
subscription sends an explicit ``EVENT_UNREADABLE`` marker in its place and goes on: reading an
event never ends a stream.

A job event does not carry the job's hyperparameters (they never change after creation and can
be large; ``services.changes``): the subscription passes them in, read from the record once per
job and kept here (``remember_hyperparameters``), only when its selection asks for them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from graphql_api.domain.artifacts import Tag
from graphql_api.domain.enums import (
    FailureKind,
    JobHealth,
    ModelStatus,
    ModelType,
    TrainingStatus,
)
from graphql_api.domain.events import ChangeEvent
from graphql_api.domain.models import ModelVersion, TrainingJob

_CACHE_SIZE = 4096
#: Jobs whose hyperparameters are kept: they can be large (about 1 MB each at most).
_HYPERPARAMETERS_CACHE_SIZE = 64
#: Identifies an event across databases too (tests run many in one process; seqs repeat).
EventKey = tuple[int, str, str | None, datetime]
_cache: OrderedDict[EventKey, BaseModel | None] = OrderedDict()
_hyperparameters: OrderedDict[str, dict[str, Any]] = OrderedDict()

M = TypeVar("M", bound=BaseModel)


class _AsRecorded(BaseModel):
    # The types GraphQL needs to show the record; no limits (those held when it was written).
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class _JobAsRecorded(_AsRecorded):
    job_id: str
    model_id: str
    status: TrainingStatus
    hyperparameters: dict[str, Any] = {}
    dataset_id: str
    started_date: datetime | None = None
    completed_date: datetime | None = None
    metrics: dict[str, int | float] = {}
    logs_url: str | None = None
    created_date: datetime
    failure_reason: str | None = None
    # Workers (docs/workers.md); events written before them read with these defaults.
    queue: str = "default"
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    lease_seconds: int | None = None
    last_heartbeat_at: datetime | None = None
    health: JobHealth = JobHealth.HEALTHY
    failure_kind: FailureKind | None = None
    max_runtime_seconds: int | None = None
    retry_max_attempts: int = 1
    retry_on: list[FailureKind] = []
    retry_backoff_seconds: float = 0.0
    attempt: int = 1
    retry_of: str | None = None
    retry_root: str | None = None
    retry_due_at: datetime | None = None
    retried_by: str | None = None
    failure_retryable: bool = False
    failure_exit_code: int | None = None
    cancel_requested_at: datetime | None = None
    cancel_deadline_at: datetime | None = None


class _ModelVersionAsRecorded(_AsRecorded):
    model_id: str
    model_name: str
    version: str
    model_type: ModelType
    status: ModelStatus
    metrics: dict[str, int | float] = {}
    created_date: datetime
    deployed_date: datetime | None = None
    # Absent from events recorded before deployable versions.
    artifact_uri: str | None = None
    artifact_digest: str | None = None
    description: str | None = None
    tags: list[Tag] = []
    created_by: str | None = None
    source_job_id: str | None = None


def event_key(event: ChangeEvent) -> EventKey:
    return (event.seq, event.entity_id, event.event_id, event.occurred_at)


def _utc(value: Any) -> Any:
    # Stored datetimes are UTC; BSON hands them back without a zone.
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _record(event: ChangeEvent, shape: type[_AsRecorded], model: type[M]) -> M | None:
    key = event_key(event)
    if key in _cache:
        _cache.move_to_end(key)
        found = _cache[key]
        return found if isinstance(found, model) else None
    try:
        if not isinstance(event.snapshot, Mapping):
            raise TypeError("the snapshot is not an object")
        checked = shape.model_validate(event.snapshot)
        record: M | None = model.model_construct(
            **{name: _utc(value) for name, value in dict(checked).items()}
        )
    except (PydanticValidationError, TypeError):
        record = None
    _cache[key] = record
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return record


def carries_hyperparameters(event: ChangeEvent) -> bool:
    """Events recorded before hyperparameters were left out of them still carry them."""
    return isinstance(event.snapshot, Mapping) and "hyperparameters" in event.snapshot


def job_after(
    event: ChangeEvent, hyperparameters: Mapping[str, Any] | None = None
) -> TrainingJob | None:
    """The job as it was right after ``event``; ``None`` if its snapshot cannot be read.
    ``hyperparameters``: the job's (read from the record), when the event lacks them."""
    job = _record(event, _JobAsRecorded, TrainingJob)
    if job is None or hyperparameters is None or carries_hyperparameters(event):
        return job
    return job.model_copy(update={"hyperparameters": dict(hyperparameters)})


def model_version_after(event: ChangeEvent) -> ModelVersion | None:
    return _record(event, _ModelVersionAsRecorded, ModelVersion)


def known_hyperparameters(job_id: str) -> dict[str, Any] | None:
    found = _hyperparameters.get(job_id)
    if found is not None:
        _hyperparameters.move_to_end(job_id)
    return found


def remember_hyperparameters(job_id: str, hyperparameters: Mapping[str, Any]) -> None:
    """A job's hyperparameters never change once it exists: a copy never goes stale."""
    _hyperparameters[job_id] = dict(hyperparameters)
    if len(_hyperparameters) > _HYPERPARAMETERS_CACHE_SIZE:
        _hyperparameters.popitem(last=False)
