"""A recorded change of a job or a model version, as GraphQL sees it."""

from __future__ import annotations

import strawberry

from graphql_api.domain import events
from graphql_api.live import cursor as log_cursor
from graphql_api.types.enums import ChangeKind, TrainingStatus


@strawberry.experimental.pydantic.type(
    model=events.ChangeEvent,
    name="ChangeEvent",
    description="One recorded change of a training job: what happened, when, and the status "
    "before and after.",
)
class ChangeEventType:
    seq: int = strawberry.field(description="Position in the change log; increases.")
    kind: ChangeKind = strawberry.field(description="What happened.")
    # Enums, spelled as everywhere else in the schema (the log stores the status values).
    previous_status: TrainingStatus | None = strawberry.field(
        description="Status before the change (null for a creation)."
    )
    status: TrainingStatus = strawberry.field(description="Status after the change.")
    occurred_at: strawberry.auto = strawberry.field(description="When it happened (UTC).")
    actor: str | None = strawberry.field(description="Who made the change, when known.")

    @strawberry.field(
        description="Opaque position in the change log: pass it as `after` to a subscription "
        "to receive the changes made since this one."
    )
    def cursor(self) -> str:
        return log_cursor.encode(self.seq)
