"""A recorded change of a job or a model version, as GraphQL sees it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import strawberry
from graphql.error import GraphQLError

from graphql_api.domain import enums as domain_enums
from graphql_api.domain import events
from graphql_api.domain.events import StoredEvent
from graphql_api.live import cursor as log_cursor
from graphql_api.types import typed
from graphql_api.types.enums import ChangeKind, TrainingStatus
from graphql_api.types.pagination import PageInfo

log = logging.getLogger("mltrain.live")


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

    @typed.field(
        description="Opaque position in the change log: pass it as `after` to a subscription "
        "to receive the changes made since this one."
    )
    def cursor(self) -> str:
        return log_cursor.encode(self.seq)


def unreadable_error(seq: int) -> GraphQLError:
    """The explicit marker that stands in for an event that cannot be read or rendered (corrupt,
    or written by an incompatible version): the reader continues past it."""
    after = log_cursor.encode(seq)
    return GraphQLError(
        "This change could not be read from the change log (the stored event is corrupt or "
        f'was written by an incompatible version) and is skipped; its cursor is "{after}". '
        "The server log has the details.",
        extensions={"code": "EVENT_UNREADABLE", "cursor": after, "resumeAfter": after},
    )


def log_page(
    found: Sequence[StoredEvent], first: int
) -> tuple[list[tuple[str, StoredEvent]], PageInfo]:
    """One forward page of change-log events, each with its cursor, and its PageInfo.

    ``found``: up to ``first + 1`` events, oldest first (the extra one says a next page exists).
    Shared by a job's history and a model version's history, which page the log alike.
    """
    page = found[:first]
    cursors = [log_cursor.encode(event.seq) for event in page]
    return list(zip(cursors, page, strict=True)), PageInfo(
        has_next_page=len(found) > first,
        has_previous_page=False,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )


@strawberry.type(description="A recorded change and its position in the job's history.")
class ChangeEventEdge:
    cursor: str = strawberry.field(
        description="Opaque position of this change: `after` for the next page, or for a "
        "subscription that continues right after it."
    )
    entry: strawberry.Private[StoredEvent]

    @typed.field(
        description="The change; null only when the stored event cannot be read, with an "
        "`EVENT_UNREADABLE` error at this path (the page goes on past it).",
        graphql_type=ChangeEventType | None,
    )
    def node(self) -> events.ChangeEvent:
        entry = self.entry
        if isinstance(entry, events.UnreadableEvent):
            log.warning("history: the event at seq %d is unreadable: %s", *_why(entry))
            raise unreadable_error(entry.seq)
        if not _has_job_statuses(entry):
            # A job's history spells statuses as the TrainingStatus enum; a stored status that
            # is not one (another entity's, or damaged) cannot be shown as one.
            log.warning(
                "history: the event at seq %d has statuses %r -> %r, not a job's",
                entry.seq,
                entry.previous_status,
                entry.status,
            )
            raise unreadable_error(entry.seq)
        return entry


_JOB_STATUSES = frozenset(status.value for status in domain_enums.TrainingStatus)


def _has_job_statuses(event: events.ChangeEvent) -> bool:
    return event.status in _JOB_STATUSES and (
        event.previous_status is None or event.previous_status in _JOB_STATUSES
    )


def _why(event: events.UnreadableEvent) -> tuple[int, str]:
    return event.seq, event.reason


@strawberry.type(
    description="A page of a job's recorded changes, oldest first, paginated with `first` and "
    "`after` (a change's cursor)."
)
class ChangeEventConnection:
    edges: list[ChangeEventEdge]
    page_info: PageInfo
    count_all: strawberry.Private[Callable[[], Awaitable[int]]]

    @typed.field(
        description="How many changes the job has recorded in all pages (one extra count "
        "query, made only when this field is selected, batched across jobs)."
    )
    async def total_count(self) -> int:
        return await self.count_all()

    @classmethod
    def of(
        cls, found: Sequence[StoredEvent], first: int, count_all: Callable[[], Awaitable[int]]
    ) -> ChangeEventConnection:
        """``found``: up to ``first + 1`` events (the extra one says a next page exists)."""
        page, page_info = log_page(found, first)
        return cls(
            edges=[ChangeEventEdge(cursor=c, entry=e) for c, e in page],
            page_info=page_info,
            count_all=count_all,
        )
