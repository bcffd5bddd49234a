"""Keyset pages ordered by a metric's value (``orderByMetric``), exact with ties and with
records that lack the metric.

The list is two runs, read in turn: the records that have the metric, ordered by (value, _id)
in the asked direction, then the records without it, ordered by _id in the same direction.
Missing values come last in both directions, and this never depends on how a server orders a
missing field against numbers (MongoDB, mongomock and DocumentDB need not agree). A cursor holds
the value (null in the second run) and the id, so a page starts strictly after its row in one
total order: no row twice, none missing, while rows are added meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.domain.queries import MetricOrder, PageRequest, decode_cursor, encode_cursor
from graphql_api.storage.mongo.keyset import ASCENDING, DESCENDING

#: Reads ``limit`` documents matching ``query`` in ``sort`` order.
Reader = Callable[[dict[str, Any], list[tuple[str, int]], int], Awaitable[list[dict[str, Any]]]]


def _and(*queries: dict[str, Any]) -> dict[str, Any]:
    parts = [q for q in queries if q]
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _forged() -> ValidationError:
    return ValidationError("after", "is not a cursor returned by this API", ValidationRule.cursor)


class MetricKeyset:
    """The two-run keyset of one list (``items``: "modelVersions") ordered by ``order``."""

    def __init__(self, items: str, order: MetricOrder) -> None:
        self.field = f"metrics.{order.key}"
        self.direction = DESCENDING if order.descending else ASCENDING
        self.name = f"{items}:metric:{'DESC' if order.descending else 'ASC'}:{order.key}"

    def cursor_for(self, doc: dict[str, Any]) -> str:
        value = doc.get("metrics", {}).get(self.field.partition(".")[2])
        return encode_cursor(self.name, [value, doc["_id"]])

    def _decode(self, cursor: str) -> tuple[int | float | None, str]:
        value, record_id = decode_cursor(cursor, self.name, 2)
        if isinstance(value, bool) or not isinstance(value, int | float | None):
            raise _forged()
        if not isinstance(record_id, str):
            raise _forged()
        return value, record_id

    async def page(
        self, query: dict[str, Any], page: PageRequest, read: Reader
    ) -> tuple[list[dict[str, Any]], list[str], bool]:
        """``page.first`` documents after ``page.after`` (and whether more follow): at most
        two reads, each ``limit``-ed to what the page still needs plus one."""
        has = {self.field: {"$exists": True}}
        lacks = {self.field: {"$exists": False}}
        beyond = "$lt" if self.direction == DESCENDING else "$gt"
        docs: list[dict[str, Any]] = []
        value: int | float | None = None
        record_id: str | None = None
        if page.after:
            value, record_id = self._decode(page.after)
        wanted = page.first + 1
        if record_id is None or value is not None:
            after: dict[str, Any] = {}
            if record_id is not None:
                after = {
                    "$or": [
                        {self.field: {beyond: value}},
                        {self.field: value, "_id": {beyond: record_id}},
                    ]
                }
            sort = [(self.field, self.direction), ("_id", self.direction)]
            docs = await read(_and(query, has, after), sort, wanted)
        if len(docs) < wanted:
            after_id = (
                {} if value is not None or record_id is None else {"_id": {beyond: record_id}}
            )
            docs += await read(
                _and(query, lacks, after_id), [("_id", self.direction)], wanted - len(docs)
            )
        has_next = len(docs) > page.first
        docs = docs[: page.first]
        return docs, [self.cursor_for(d) for d in docs], has_next
