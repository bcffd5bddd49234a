"""Events pushed to subscribers: one per change of a training job or a model version.

One event goes to every matching subscriber, so its GraphQL object is built once per event
(``of``, cached) and holds plain values: resolving plain attributes is the cheap path of the
executor, which runs once per subscriber.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import strawberry

from graphql_api.domain.enums import ModelStatus as DomainModelStatus
from graphql_api.domain.enums import TrainingStatus as DomainTrainingStatus
from graphql_api.domain.events import ChangeEvent
from graphql_api.live import cursor, records
from graphql_api.types.enums import ChangeKind, ModelStatus, TrainingStatus
from graphql_api.types.model_version import ModelVersionType
from graphql_api.types.training_job import TrainingJobType

CURSOR_HELP = (
    "Opaque position of this event in the change log: pass it as `after` to resume right "
    "after it, on any server instance."
)

_CACHE_SIZE = 1024
_built: OrderedDict[tuple[type, records.EventKey], object] = OrderedDict()

U = TypeVar("U")


def _shared(update: type[U], build: Callable[[ChangeEvent], U], event: ChangeEvent) -> U:
    key = (update, records.event_key(event))
    found = _built.get(key)
    if isinstance(found, update):
        return found
    built = _built[key] = build(event)
    if len(_built) > _CACHE_SIZE:
        _built.popitem(last=False)
    return built


@strawberry.type(description="One change of a training job, pushed as it happens.")
class TrainingJobUpdate:
    cursor: str = strawberry.field(description=CURSOR_HELP)
    kind: ChangeKind = strawberry.field(description="What happened.")
    previous_status: TrainingStatus | None = strawberry.field(
        description="Status before the change (null for a creation)."
    )
    status: TrainingStatus = strawberry.field(description="Status after the change.")
    occurred_at: datetime = strawberry.field(description="When it happened (UTC).")
    job: TrainingJobType = strawberry.field(description="The job as it was right after the change.")

    @classmethod
    def of(cls, event: ChangeEvent) -> TrainingJobUpdate:
        previous = event.previous_status
        return cls(
            cursor=cursor.encode(event.seq),
            kind=event.kind,
            previous_status=None if previous is None else DomainTrainingStatus(previous),
            status=DomainTrainingStatus(event.status),
            occurred_at=event.occurred_at,
            job=records.job_after(event),  # type: ignore[arg-type]
        )

    @classmethod
    def shared(cls, event: ChangeEvent) -> TrainingJobUpdate:
        """The event's object, built once however many subscribers show it."""
        return _shared(cls, cls.of, event)


@strawberry.type(description="One change of a model version, pushed as it happens.")
class ModelVersionUpdate:
    cursor: str = strawberry.field(description=CURSOR_HELP)
    kind: ChangeKind = strawberry.field(
        description="What happened: REGISTERED, PROMOTED, DEPLOYED (reached production), "
        "ARCHIVED or METRICS_UPDATED."
    )
    previous_status: ModelStatus | None = strawberry.field(
        description="Status before the change (null for a registration)."
    )
    status: ModelStatus = strawberry.field(description="Status after the change.")
    occurred_at: datetime = strawberry.field(description="When it happened (UTC).")
    model_version: ModelVersionType = strawberry.field(
        description="The model version as it was right after the change."
    )

    @classmethod
    def of(cls, event: ChangeEvent) -> ModelVersionUpdate:
        previous = event.previous_status
        return cls(
            cursor=cursor.encode(event.seq),
            kind=event.kind,
            previous_status=None if previous is None else DomainModelStatus(previous),
            status=DomainModelStatus(event.status),
            occurred_at=event.occurred_at,
            model_version=records.model_version_after(event),  # type: ignore[arg-type]
        )

    @classmethod
    def shared(cls, event: ChangeEvent) -> ModelVersionUpdate:
        """The event's object, built once however many subscribers show it."""
        return _shared(cls, cls.of, event)
