"""A model version's recorded changes, as the registry's history shows them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import strawberry

from graphql_api.domain import enums as domain_enums
from graphql_api.domain import events
from graphql_api.domain.events import StoredEvent
from graphql_api.live import cursor as log_cursor
from graphql_api.types import typed
from graphql_api.types.change_event import log_page, unreadable_error
from graphql_api.types.enums import ChangeKind, ModelStatus
from graphql_api.types.pagination import PageInfo

log = logging.getLogger("mltrain.registry")


@strawberry.type(
    description="One recorded change of a model version: who, when, what happened, from what "
    "to what, and why."
)
class ModelVersionChange:
    cursor: str = strawberry.field(
        description="Position in the change log: `after` for the next page, or for "
        "modelVersionUpdates to continue right after this change."
    )
    kind: ChangeKind = strawberry.field(description="What happened.")
    model_id: strawberry.ID = strawberry.field(description="The version that changed.")
    version: str | None = strawberry.field(description="Its SemVer version.")
    previous_status: ModelStatus | None = strawberry.field(
        description="Status before (null for a registration)."
    )
    status: ModelStatus = strawberry.field(description="Status after.")
    occurred_at: datetime = strawberry.field(description="When (UTC).")
    actor: str | None = strawberry.field(
        description="Who: the name of the API key that made it (null in open mode)."
    )
    reason: str | None = strawberry.field(description="Why, when the client said (rollbacks).")
    alias: str | None = strawberry.field(
        description="ALIAS_SET / ALIAS_DELETED: the alias that moved."
    )
    previous_model_id: strawberry.ID | None = strawberry.field(
        description="From which version: the one the alias named before (ALIAS_SET), or the "
        "one a rollback replaced in production (DEPLOYED)."
    )

    @classmethod
    def of(cls, event: events.ChangeEvent) -> ModelVersionChange:
        previous = event.previous_status
        version = event.snapshot.get("version") if isinstance(event.snapshot, dict) else None
        return cls(
            cursor=log_cursor.encode(event.seq),
            kind=event.kind,
            model_id=strawberry.ID(event.entity_id),
            version=version if isinstance(version, str) else None,
            previous_status=None if previous is None else domain_enums.ModelStatus(previous),
            status=domain_enums.ModelStatus(event.status),
            occurred_at=event.occurred_at,
            actor=event.actor,
            reason=event.reason,
            alias=event.alias,
            previous_model_id=None
            if event.previous_model_id is None
            else strawberry.ID(event.previous_model_id),
        )


_MODEL_STATUSES = frozenset(status.value for status in domain_enums.ModelStatus)


@strawberry.type(description="A recorded change and its position in the history.")
class ModelVersionChangeEdge:
    cursor: str = strawberry.field(description="Opaque position of this change.")
    entry: strawberry.Private[StoredEvent]

    @typed.field(
        description="The change; null only when the stored event cannot be read, with an "
        "`EVENT_UNREADABLE` error at this path (the page goes on past it).",
        graphql_type=ModelVersionChange | None,
    )
    def node(self) -> ModelVersionChange:
        entry = self.entry
        if isinstance(entry, events.UnreadableEvent) or not (
            entry.status in _MODEL_STATUSES
            and (entry.previous_status is None or entry.previous_status in _MODEL_STATUSES)
        ):
            log.warning("registry history: the event at seq %d is unreadable", entry.seq)
            raise unreadable_error(entry.seq)
        return ModelVersionChange.of(entry)


@strawberry.type(
    description="A page of recorded changes, oldest first, paginated with `first` and `after`."
)
class ModelVersionChangeConnection:
    edges: list[ModelVersionChangeEdge]
    page_info: PageInfo
    count_all: strawberry.Private[Callable[[], Awaitable[int]]]

    @typed.field(description="How many changes in all pages (a count query, only if selected).")
    async def total_count(self) -> int:
        return await self.count_all()

    @classmethod
    def of(
        cls, found: Sequence[StoredEvent], first: int, count_all: Callable[[], Awaitable[int]]
    ) -> ModelVersionChangeConnection:
        """``found``: up to ``first + 1`` events (the extra one says a next page exists)."""
        page, page_info = log_page(found, first)
        return cls(
            edges=[ModelVersionChangeEdge(cursor=c, entry=e) for c, e in page],
            page_info=page_info,
            count_all=count_all,
        )
