"""Sorted pages read in windows of the sort key, for servers that sort every matching row.

DocumentDB (FerretDB v2) never walks an index in order: ``find(q).sort(k).limit(n)`` reads every
row matching ``q`` and sorts them (top-N), so an unfiltered first page at 100,000 jobs read all
of them (232 ms of database CPU; bench/README.md, "Sorted pages"). A range on the sort key is
different: its index serves it, and the cost is the rows inside the range. So a page is read
as a series of windows of the leading sort key, from the page's start (the cursor's value, or
the list's edge) outwards:

* window 0 is unbounded on the near side (``k >= b0`` descending), so rows newer than any guess
  of the edge are never missed; each next window is ``b[i] <= k < b[i-1]`` (descending;
  mirrored ascending), each twice as wide as the one before (eight times while none held a
  row, to cross empty stretches in a few steps);
* each window is read with the page's filter, sort and the limit still needed, and the
  windows are read in order until the page is full;
* after ``MAX_WINDOWS`` windows, or when the next boundary would leave the key's domain or
  pass where the list ended last time, the rest (``k < b[last]``) is read unbounded: never
  more than the plain query reads.

The windows partition the key's values (a row belongs to exactly one window, rows with equal
keys to the same one), and each is read in the full sort order (key, then ``_id``), so their
concatenation is exactly the plain sorted query, whatever the boundaries are. The boundaries
only decide the cost: each list (sort spec and the fields its filter constrains) remembers where
its edge was and how much of the key a row took (``Hint``), so the next page starts with a
window that about fits it, and where it ended (windows stop there and read the rest
unbounded: only rows added since are beyond it). A page after a cursor starts at the cursor's
value; a filtered list with no hints of its own starts from the unfiltered list's. The first
page of a list that this process has never read (no hints for it or for the unfiltered list)
is read plainly, once, to learn where its rows are; so is a list shorter than a page (one
round trip, a few rows sorted). "Once" holds under concurrency too: first pages of a list that
arrive while its plain read is in flight wait for it and then read in windows. Without that, a
freshly started instance under dashboard load sent one whole sort per waiting request (16 at
once at 100,000 jobs on DocumentDB: each past the 2.5 s operation bound, bench/README.md).

Every document the API writes holds its sort key with its type (a date, a string): the
windows are ranges of that type (MongoDB brackets ranges by type), so a row whose key were
missing or of another type would be in no window. ``MODEL_VERSIONS``/``TRAINING_JOBS`` always
write it (``documents.py``).

Windowing is on where the server needs it (``ServerInfo.needs_sort_windows``): MongoDB walks its
``(created_date, _id)`` index in order and stops after the page, so a window there would only
add round trips. ``MLTRAIN_WINDOWED_SORTS`` forces it on or off; the tests force it on for the
in-memory mock too, so the windowed path is covered on both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from graphql_api.storage.mongo.keyset import ASCENDING, SortField, SortSpec

#: Windows read before the rest is read unbounded (a page's round trips are at most this + 1).
MAX_WINDOWS = 12
#: The first window of a list with no density hint yet (a page after a cursor in a process
#: that never read the list), in key units per row asked for: one second per row for dates.
FIRST_SPAN_PER_ROW = 1000.0
#: Hints kept per process (lists x filter field combinations; a bound, not a working size).
MAX_HINTS = 512

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Dates as milliseconds since the epoch, within what a ``datetime`` can hold.
_DATE_MIN = (datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_DATE_MAX = (datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
#: Strings as base-128 numbers of their first 8 characters (ASCII: sort keys and ids are).
_STRING_DIGITS = 8
_STRING_MAX = 128**_STRING_DIGITS - 1

#: Reads ``limit`` documents matching ``query`` in ``sort`` order (one round trip).
Reader = Callable[[dict[str, Any], list[tuple[str, int]], int], Awaitable[list[dict[str, Any]]]]


@dataclass
class Hint:
    """What one list's earlier pages showed: its edge (where a first page starts) and how
    much of the key one row took, both as numbers on the key's axis (``_Axis``)."""

    edge: float | None = None
    span_per_row: float | None = None
    #: Where the list ended when a read reached its end (windows stop there: the rest is read
    #: unbounded, which holds only rows added since), and whether a first page held all of it
    #: (a list shorter than a page is read plainly: one round trip, a few rows sorted).
    end: float | None = None
    short: bool = False


class _Axis:
    """A sort key's values as numbers, to place window boundaries. Only the order of the
    boundaries matters for exactness; this mapping decides how well they fit the data."""

    def __init__(self, field: SortField) -> None:
        self.dates = field.kind == "datetime"
        self.low: int = _DATE_MIN if self.dates else 0
        self.high: int = _DATE_MAX if self.dates else _STRING_MAX

    def number(self, value: Any) -> float | None:
        if self.dates:
            if not isinstance(value, datetime):
                return None
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return float((value - _EPOCH) // timedelta(milliseconds=1))
        if not isinstance(value, str):
            return None
        digits = [min(ord(c), 127) for c in value[:_STRING_DIGITS]]
        digits += [0] * (_STRING_DIGITS - len(digits))
        number = 0
        for digit in digits:
            number = number * 128 + digit
        return float(number)

    def value(self, number: float) -> Any:
        """A boundary on the axis (rounded down to a representable one)."""
        whole = int(max(self.low, min(self.high, number)))
        if self.dates:
            return _EPOCH + timedelta(milliseconds=whole)
        chars = []
        for _ in range(_STRING_DIGITS):
            whole, digit = divmod(whole, 128)
            chars.append(chr(digit))
        return "".join(reversed(chars)).rstrip("\x00")


def list_key(query: dict[str, Any]) -> str:
    """The fields a list's filter constrains (through ``$and``), naming its hint: lists that
    differ only in values (one status or another) share one."""
    fields: set[str] = set()
    for key, value in query.items():
        if key == "$and":
            fields.update(list_key(part) for part in value)
        else:
            fields.add(key)
    return ",".join(sorted(fields))


class SortWindows:
    """Whether sorted pages are read in windows (``enabled``), and each list's hints."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self._hints: dict[tuple[str, str], Hint] = {}
        #: Lists whose learning read is in flight: set once it ended (either way).
        self._learning: dict[tuple[str, str], asyncio.Event] = {}

    def hint(self, list_key: tuple[str, str]) -> Hint:
        found = self._hints.get(list_key)
        if found is None:
            if len(self._hints) >= MAX_HINTS:
                self._hints.clear()
            found = self._hints[list_key] = Hint()
        return found

    async def read(
        self,
        query: dict[str, Any],
        spec: SortSpec,
        after: list[object] | None,
        limit: int,
        list_key: str,
        read: Reader,
    ) -> list[dict[str, Any]]:
        """The first ``limit`` documents matching ``query`` after the row with the sort
        values ``after`` (None: from the start) in ``spec`` order, as the plain
        ``read(spec.page_query(query, after), spec.mongo_sort, limit)`` returns them;
        ``list_key`` names the list and its filter's fields (for the hint)."""
        start = None if after is None else after[0]
        field = spec.fields[0]
        axis = _Axis(field)
        key = (spec.name, list_key)
        hint = self.hint(key)
        # A filtered list without hints starts from the unfiltered list's: its edge bounds
        # the filtered one's, and its rows are at least as dense.
        whole = self.hint((spec.name, "")) if list_key else hint
        descending = field.direction != ASCENDING
        step = -1.0 if descending else 1.0
        while start is None and whole.edge is None and hint.edge is None and not hint.short:
            # A list never read in this process: where would its rows be? One plain read
            # learns it; first pages arriving meanwhile wait for that read, then go on with
            # what it learned (or, had it failed or learned nothing, one of them reads).
            learning = self._learning.get(key)
            if learning is None:
                break
            await learning.wait()
            hint = self.hint(key)
            whole = self.hint((spec.name, "")) if list_key else hint
        if (start is None and whole.edge is None and hint.edge is None) or hint.short:
            # Never read (see above), or shorter than a page: plainly, learning where its
            # rows are.
            learning = None
            if not hint.short:
                learning = self._learning[key] = asyncio.Event()
            try:
                plain = await read(spec.page_query(query, after), spec.mongo_sort, limit)
                self._learn(hint, axis, 0.0, start is None, field.name, plain, limit)
            finally:
                if learning is not None:
                    del self._learning[key]
                    learning.set()
            return plain
        anchor = axis.number(start) if start is not None else hint.edge
        if anchor is None:
            anchor = whole.edge
        assert anchor is not None
        end = hint.end if hint.end is not None else whole.end
        span = (hint.span_per_row or whole.span_per_row or FIRST_SPAN_PER_ROW) * limit
        near, far = ("$gte", "$lt") if descending else ("$lte", "$gt")
        docs: list[dict[str, Any]] = []
        previous: Any = None  # the boundary the last window ended at
        for window in range(MAX_WINDOWS + 1):
            boundary = anchor + step * span
            last = (
                window == MAX_WINDOWS
                or not axis.low < boundary < axis.high
                or (end is not None and (boundary - end) * step > 0)
            )
            bound: dict[str, Any] = {} if last else {near: axis.value(boundary)}
            if previous is not None:
                bound[far] = previous
            if last or previous is None or bound[near] != previous:
                docs += await read(
                    spec.page_query(query, after, bound),
                    spec.mongo_sort,
                    limit - len(docs),
                )
            if len(docs) >= limit or last:
                break
            previous = bound[near]
            span *= 2 if docs else 8
        self._learn(hint, axis, anchor, start is None, field.name, docs, limit)
        return docs

    @staticmethod
    def _learn(
        hint: Hint,
        axis: _Axis,
        anchor: float,
        first_page: bool,
        name: str,
        docs: list[dict[str, Any]],
        limit: int,
    ) -> None:
        ended = len(docs) < limit
        if first_page:
            hint.short = ended
        if not docs:
            return
        if first_page:
            edge = axis.number(docs[0].get(name))
            if edge is not None:
                hint.edge = edge
                anchor = edge
        reached = axis.number(docs[-1].get(name))
        if reached is None:
            return
        if ended:  # what its rows spanned says nothing of a list that went on
            hint.end = reached
            return
        hint.span_per_row = max(abs(reached - anchor) / len(docs), 1.0)
