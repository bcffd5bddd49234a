"""Keyset pagination over MongoDB: sort specs, cursor values and the "after this row" filter.

A page is ``sort(spec).limit(first + 1)`` under a filter that starts strictly after the cursor's
row, so paging never skips (no ``skip``), costs the same on page 1 and page 1,000, and stays
stable when rows are inserted meanwhile. Every spec ends with ``_id`` so the order is total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.domain.queries import decode_cursor, encode_cursor

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ASCENDING = 1
DESCENDING = -1


@dataclass(frozen=True, slots=True)
class SortField:
    name: str
    direction: int
    kind: Literal["str", "datetime"] = "str"


@dataclass(frozen=True, slots=True)
class SortSpec:
    name: str
    fields: tuple[SortField, ...]

    @property
    def mongo_sort(self) -> list[tuple[str, int]]:
        return [(f.name, f.direction) for f in self.fields]

    def cursor_for(self, doc: dict[str, Any]) -> str:
        values: list[object] = []
        for f in self.fields:
            value = doc.get(f.name)
            if f.kind == "datetime" and isinstance(value, datetime):
                value = _to_millis(value)
            values.append(value)
        return encode_cursor(self.name, values)

    def after_filter(self, cursor: str) -> dict[str, Any]:
        raw = decode_cursor(cursor, self.name, len(self.fields))
        values = [self._parse(f, value) for f, value in zip(self.fields, raw, strict=True)]
        branches: list[dict[str, Any]] = []
        for i, f in enumerate(self.fields):
            branch: dict[str, Any] = {p.name: values[j] for j, p in enumerate(self.fields[:i])}
            branch[f.name] = {"$gt" if f.direction == ASCENDING else "$lt": values[i]}
            branches.append(branch)
        return {"$or": branches}

    @staticmethod
    def _parse(f: SortField, value: object) -> object:
        if f.kind == "datetime":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValidationError(
                    "after", "is not a cursor returned by this API", ValidationRule.cursor
                )
            return _EPOCH + timedelta(milliseconds=value)
        if not isinstance(value, str):
            raise ValidationError(
                "after", "is not a cursor returned by this API", ValidationRule.cursor
            )
        return value


def _to_millis(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(milliseconds=1)
