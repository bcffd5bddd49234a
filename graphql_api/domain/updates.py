"""What a service asks storage to change in a stored record: typed, and validated by the
domain's own value types when it is built, so storage never receives a value its model would
refuse, nor a dict of field names. Storage turns these into its update in one place
(``storage.mongo.updates``).

A change names model fields, never storage fields; ``fields()`` is what it sets. A metrics
merge is the one change that depends on what is stored (the merged result must stay within
``limit``), so storage applies it as a checked merge, not a plain set.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from graphql_api.domain.artifacts import Tag
from graphql_api.domain.enums import FailureKind, JobHealth
from graphql_api.domain.lifecycle import Transition
from graphql_api.domain.values import (
    MAX_METRICS,
    FreeText,
    Identifier,
    Metrics,
    Url,
    UtcDatetime,
)

_CHANGE = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Move(BaseModel):
    """A transition's status change: the record takes the row's target status, and the row's
    dates take ``at``."""

    model_config = _CHANGE

    transition: Transition[Any]
    at: UtcDatetime

    @model_validator(mode="after")
    def _moves(self) -> Move:
        if self.transition.target is None:
            raise ValueError(f"{self.transition.name} leaves the status as it is")
        return self

    def fields(self) -> dict[str, Any]:
        return {"status": self.transition.target, **dict.fromkeys(self.transition.dates, self.at)}


class FailureReason(BaseModel):
    """Why a job failed: its kind and the message."""

    model_config = _CHANGE

    reason: FreeText
    kind: FailureKind = FailureKind.USER_CODE

    def fields(self) -> dict[str, Any]:
        return {"failure_reason": self.reason, "failure_kind": self.kind}


class HealthChange(BaseModel):
    """The worker's liveness as the sweep (or a heartbeat) found it. Losing the job also
    ends its lease: the worker's token then fences nothing but a LeaseLostError."""

    model_config = _CHANGE

    health: JobHealth

    def fields(self) -> dict[str, Any]:
        if self.health is JobHealth.LOST:
            return {"health": self.health, "lease_token_hash": None}
        return {"health": self.health}


class LogsUrl(BaseModel):
    """Where a job's logs are."""

    model_config = _CHANGE

    logs_url: Url

    def fields(self) -> dict[str, Any]:
        return {"logs_url": self.logs_url}


class LeaseGrant(BaseModel):
    """A worker takes the job's lease: the token's hash fences its later writes
    (``domain.leases``), and the grant counts as its first heartbeat."""

    model_config = _CHANGE

    worker_id: Identifier | None
    token_hash: str
    seconds: int
    at: UtcDatetime

    def fields(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "lease_token_hash": self.token_hash,
            "lease_seconds": self.seconds,
            "lease_expires_at": self.at + timedelta(seconds=self.seconds),
            "last_heartbeat_at": self.at,
        }


class Heartbeat(BaseModel):
    """The worker is alive at ``at``: its lease runs ``seconds`` from then."""

    model_config = _CHANGE

    seconds: int
    at: UtcDatetime

    def fields(self) -> dict[str, Any]:
        return {
            "lease_expires_at": self.at + timedelta(seconds=self.seconds),
            "last_heartbeat_at": self.at,
        }


class RetryScheduled(BaseModel):
    """The failure is retried automatically: the sweep creates the next attempt at ``due``."""

    model_config = _CHANGE

    due: UtcDatetime

    def fields(self) -> dict[str, Any]:
        return {"retry_due_at": self.due, "failure_retryable": True}


class Retried(BaseModel):
    """The next attempt exists: ``by``."""

    model_config = _CHANGE

    by: Identifier

    def fields(self) -> dict[str, Any]:
        return {"retried_by": self.by, "retry_due_at": None}


class RetryWithdrawn(BaseModel):
    """The automatic next attempt is not made (the job's model version was archived before
    it was due): the sweep's mark is cleared."""

    model_config = _CHANGE

    def fields(self) -> dict[str, Any]:
        return {"retry_due_at": None}


class ExitCode(BaseModel):
    """The exit code the training process ended with."""

    model_config = _CHANGE

    exit_code: int

    def fields(self) -> dict[str, Any]:
        return {"failure_exit_code": self.exit_code}


class CancelRequest(BaseModel):
    """A graceful cancel was asked for at ``at``."""

    model_config = _CHANGE

    at: UtcDatetime

    def fields(self) -> dict[str, Any]:
        return {"cancel_requested_at": self.at}


class CancelDeadline(BaseModel):
    """A graceful cancel: the sweep cancels the job at ``deadline`` unless the worker did."""

    model_config = _CHANGE

    deadline: UtcDatetime

    def fields(self) -> dict[str, Any]:
        return {"cancel_deadline_at": self.deadline}


class LeaseEnd(BaseModel):
    """The job is taken from its worker: its token fences nothing but a LeaseLostError."""

    model_config = _CHANGE

    def fields(self) -> dict[str, Any]:
        return {"lease_token_hash": None}


class MetricsMerge(BaseModel):
    """Metrics merged into the stored ones (a key given again replaces its value); the record
    may hold at most ``limit`` metrics afterwards, whatever concurrent merges do."""

    model_config = _CHANGE

    metrics: Metrics
    limit: int = MAX_METRICS


class VersionMetadata(BaseModel):
    """A model version's description, tags or artifact (``updateModelVersion``): only the
    fields given are changed (a description given as None is cleared; tags replace them all).
    The service checks each value with the field's own rule first, to name it in errors."""

    model_config = _CHANGE

    description: FreeText | None = None
    tags: list[Tag] | None = None
    artifact_uri: str | None = None
    artifact_digest: str | None = None

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


#: Every change a service can hand storage.
Change = (
    Move
    | FailureReason
    | HealthChange
    | LogsUrl
    | LeaseGrant
    | Heartbeat
    | LeaseEnd
    | RetryScheduled
    | Retried
    | RetryWithdrawn
    | ExitCode
    | CancelRequest
    | CancelDeadline
    | MetricsMerge
    | VersionMetadata
)
