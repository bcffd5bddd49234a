"""Relay-style connections: ``edges { cursor node }``, ``pageInfo``, an on-demand ``totalCount``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import strawberry

from graphql_api.domain.queries import Page
from graphql_api.types import typed

NodeT = TypeVar("NodeT")


@strawberry.type(description="Where a page sits in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="More items follow: pass endCursor as `after` to get them."
    )
    has_previous_page: bool = strawberry.field(
        description="Always false: pagination is forward-only (keyset)."
    )
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge.")


@strawberry.type(description="An item and its position in the list.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(description="Opaque position of this item.")
    node: NodeT


@strawberry.type(description="A page of a list, keyset-paginated with `first` and `after`.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    count_matching: strawberry.Private[Callable[[], Awaitable[int]]]

    @typed.field(
        description="How many items match the filter in all pages (one extra count query, "
        "made only when this field is selected)."
    )
    async def total_count(self) -> int:
        return await self.count_matching()

    @classmethod
    def of(
        cls, page: Page[NodeT], count_matching: Callable[[], Awaitable[int]]
    ) -> Connection[NodeT]:
        return cls(
            edges=[Edge(cursor=c, node=n) for c, n in zip(page.cursors, page.items, strict=True)],
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=False,
                start_cursor=page.start_cursor,
                end_cursor=page.end_cursor,
            ),
            count_matching=count_matching,
        )
