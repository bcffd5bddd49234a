"""What every collection store shares: round-trip counting, keyset pages, unique-key
errors, and conditional updates that stay atomic on servers that do not make them so."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pymongo
from pymongo import IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from graphql_api.domain.errors import ConflictError
from graphql_api.domain.queries import PageRequest
from graphql_api.storage.base import MergeLimitExceeded, StoreStats, counted
from graphql_api.storage.mongo.failures import unavailable
from graphql_api.storage.mongo.keyset import SortSpec
from graphql_api.storage.mongo.windows import SortWindows, list_key

log = logging.getLogger("mltrain.storage")

#: A claim older than this belongs to a writer that died between claiming and updating.
STALE_CLAIM_AFTER = timedelta(seconds=10)
MAX_UPDATE_ATTEMPTS = 50
#: Sequence numbers an append may find taken before it gives up (see MongoEventStore).
MAX_APPEND_ATTEMPTS = 100


#: How DocumentDB (FerretDB v2) words errors that MongoDB gives their own codes: it passes
#: PostgreSQL's message through as code 1 (``InternalError``). Seen under 20 concurrent
#: promotions, with these exact ``errmsg`` values (docs/real-server.md).
_EXCLUSION_VIOLATION = "conflicting key value violates exclusion constraint"
_DEADLOCK = "deadlock detected"
#: MongoDB's codes for a write that lost a race and may simply be tried again.
_TRANSIENT_CODES = frozenset({112, 251})  # WriteConflict, NoSuchTransaction
#: Attempts at an operation the server called transient, and the first pause (doubling).
TRANSIENT_ATTEMPTS = 5
FIRST_TRANSIENT_DELAY = 0.002

T = TypeVar("T")


class ClaimWaits:
    """The pauses of a guarded writer that found the record's revision claimed by another:
    doubling from 1 ms to 50 ms, and none past ``give_up_at`` (a ``time.monotonic()``)."""

    def __init__(self, give_up_at: float | None) -> None:
        self._give_up_at = give_up_at

    async def wait(self, attempt: int) -> bool:
        """Pause before attempt ``attempt + 1``; False (no pause) when it is time to give up."""
        backoff = min(0.001 * 2**attempt, 0.05)
        if self._give_up_at is not None and time.monotonic() + backoff > self._give_up_at:
            return False
        await asyncio.sleep(backoff)
        return True


def _too_many_writers(record_id: Any) -> ConflictError:
    return ConflictError(
        f"{record_id!r} is being changed by too many writers at once; retry", field="id"
    )


def _errmsg(error: OperationFailure) -> str:
    details = error.details or {}
    return str(details.get("errmsg") or error)


def is_duplicate_key(error: Exception) -> bool:
    """A unique index refused a write. MongoDB says so with code 11000; FerretDB on SQLite
    reports a unique violation by an update as code 1 with SQLite's own words, and DocumentDB
    (whose unique indexes are PostgreSQL exclusion constraints) as code 1 with PostgreSQL's."""
    if isinstance(error, DuplicateKeyError):
        return True
    if not isinstance(error, OperationFailure):
        return False
    if error.code == 11000:
        return True
    message = _errmsg(error)
    return "UNIQUE constraint failed" in message or _EXCLUSION_VIOLATION in message


def is_transient(error: Exception) -> bool:
    """The server gave up on a write only because of concurrent writers, and the same write
    may succeed if tried again: DocumentDB's PostgreSQL ``deadlock detected`` (code 1), or
    MongoDB's write conflicts. Not a conflict with the caller's request, so not a ConflictError."""
    if not isinstance(error, OperationFailure) or is_duplicate_key(error):
        return False
    return (
        error.code in _TRANSIENT_CODES
        or error.has_error_label("TransientTransactionError")
        or _DEADLOCK in _errmsg(error)
    )


async def retry_transient(operation: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``operation`` (idempotent, or conditional so that a retry cannot apply it twice),
    trying again a bounded number of times while the server reports a transient failure;
    then a ConflictError that tells the client to retry, never an unexpected error."""
    delay = FIRST_TRANSIENT_DELAY
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            return await operation()
        except OperationFailure as error:
            if not is_transient(error):
                raise
            log.info("%s: transient database error (attempt %d): %s", what, attempt, error)
            if attempt == TRANSIENT_ATTEMPTS:
                break
        # Jitter, so that the writers that deadlocked each other do not meet again.
        await asyncio.sleep(delay * (1 + random.random()))
        delay *= 2
    raise ConflictError(
        f"{what}: the database kept reporting concurrent-write failures "
        f"({TRANSIENT_ATTEMPTS} attempts); read the record and retry"
    )


#: The index option that makes DocumentDB keep one ordered key per document for a compound
#: index (server.py, ``ServerInfo.needs_ordered_indexes``).
ORDERED_INDEX = "enableOrderedIndex"
#: An index of that name exists with other keys or options (IndexKeySpecsConflict: DocumentDB
#: answers an existing unordered index so; IndexOptionsConflict).
_INDEX_SPEC_CONFLICTS = (85, 86)
_INDEX_NOT_FOUND = 27


#: What rebuilding one index may take (``MongoCollection.rebuild_unordered_indexes``): the
#: build reads the whole collection (DocumentDB, ordered, 100,000 jobs: 2.6-4.1 s on the loaded
#: 2-core VM, more than a start-up's 2.5 s bound per storage call).
INDEX_REBUILD_TIMEOUT = 600.0


class UnorderedIndex(Exception):
    """An index asked ordered (``ORDERED_INDEX``) exists unordered under its name."""


async def create_missing_indexes(
    collection: Any, indexes: Collection[IndexModel]
) -> list[IndexModel]:
    """Create those of ``indexes`` that ``collection`` does not already have as specified;
    return those asked ordered that exist unordered (``UnorderedIndex``), for a rebuild.

    One listing instead of a ``createIndexes`` per index: on DocumentDB each is PostgreSQL DDL
    even when the index exists (measured: 80-300 ms for a start-up over a database that has
    every index, against 300-500 ms for an empty one). An index that exists under the same
    name with another key or options is still sent, so the server refuses it as before
    (MongoDB: IndexOptionsConflict) instead of it being silently kept.
    """
    existing: dict[str, dict[str, Any]] = await collection.index_information()
    unordered: list[IndexModel] = []
    # One at a time: FerretDB v1's createIndexes fails when several already exist.
    for index in indexes:
        if _is_in_place(index, existing):
            continue
        try:
            await create_index(collection, index)
        except UnorderedIndex:
            unordered.append(index)
    return unordered


def _is_in_place(index: IndexModel, existing: Mapping[str, Mapping[str, Any]]) -> bool:
    wanted = index.document
    found = existing.get(str(wanted["name"]))
    if found is None:
        return False
    found_key = [(field, _direction(d)) for field, d in found.get("key", [])]
    if found_key != [(field, _direction(d)) for field, d in wanted["key"].items()]:
        return False
    return all(
        found.get(option) == value
        for option, value in wanted.items()
        if option not in ("key", "name")
    )


def _direction(direction: Any) -> Any:
    # Servers give 1 and -1 back as int, long or double; "text", "hashed" stay strings.
    return direction if isinstance(direction, str) else int(direction)


async def create_index(collection: Any, index: IndexModel) -> None:
    """Create ``index`` on ``collection`` (idempotent), retried while the server reports a
    transient failure: on DocumentDB an index is PostgreSQL DDL, and processes creating
    indexes at the same moment (instances starting together, or test workers, even in other
    databases) can deadlock on the catalog; seen in CI as ``deadlock detected`` at start-up.
    Raises ``UnorderedIndex`` where an index asked ordered exists unordered under its name."""

    async def create() -> None:
        await collection.create_index(
            index.document["key"].items(),
            **{k: v for k, v in index.document.items() if k != "key"},
        )

    try:
        await retry_transient(create, f"creating index {index.document.get('name')!r}")
    except OperationFailure as error:
        if error.code in _INDEX_SPEC_CONFLICTS and index.document.get(ORDERED_INDEX):
            raise UnorderedIndex(index.document.get("name")) from error
        raise


async def rebuild_index(collection: Any, index: IndexModel) -> None:
    """Drop the index of ``index``'s name and create ``index``. Instances starting together
    may both drop it: the second finds none, and its create is idempotent."""
    name = index.document.get("name")

    async def drop() -> None:
        try:
            await collection.drop_index(name)
        except OperationFailure as dropped:
            if dropped.code != _INDEX_NOT_FOUND:
                raise

    log.warning(
        "rebuilding index %r of %s as an ordered index (once, after an upgrade; it reads the "
        "whole collection: if the start-up runs out of time, start once with a larger "
        "MLTRAIN_MONGODB_TIMEOUT)",
        name,
        collection.name,
    )
    await retry_transient(drop, f"dropping index {name!r}")
    await create_index(collection, index)


class UpdateGuard:
    """How conditional updates are made atomic.

    MongoDB applies a ``find_one_and_update`` to one document atomically, so its filter on the
    current status is all the guard needed. FerretDB v1 does not: concurrent conditional
    updates from several connections can all match (measured: 1 to 7 winners of 20; see
    docs/ferretdb-probe.md). What it does enforce atomically is a unique index, so on such a
    server a writer first claims the document's revision by inserting ``<collection>:<id>:<rev>``
    into ``update_claims``; only the claim holder updates (filtered on that revision, which it
    bumps), then it drops the claim. A claim left by a writer that died is cleared after
    ``STALE_CLAIM_AFTER``.
    """

    def __init__(self, claims: Any, stats: StoreStats) -> None:
        self.claims = claims
        self.stats = stats
        self.enabled = False


class MongoCollection:
    """Shared plumbing: round-trip counting, keyset pages and guarded conditional updates.

    Subclasses are ``@bounded_methods``: each public method runs within ``timeout`` seconds
    (set by ``MongoStorage``) and raises ``DatabaseUnavailable``, never a driver error, when
    the database is unreachable (``failures.py``)."""

    #: Seconds one public method may take; None (the in-memory mock) is unbounded.
    timeout: float | None = None
    #: Sorted pages in windows of the sort key (set by ``MongoStorage``; off: plain sorts).
    windows: SortWindows = SortWindows()
    #: Whether compound indexes that serve a filter with a range of the sort key are made
    #: ordered (``ORDERED_INDEX``; set by ``MongoStorage`` at start-up: DocumentDB only).
    ordered_indexes: bool = False
    #: Filter field -> the ordered compound index (the field, then the sort key) that reads a
    #: window of a list filtered on it, most selective field first (``_window_index``).
    WINDOW_INDEXES: Mapping[str, str] = {}

    def __init__(self, collection: Any, stats: StoreStats, guard: UpdateGuard) -> None:
        self._c = collection
        self._stats = stats
        self._guard = guard
        #: Indexes ``ensure_indexes`` found unordered, to rebuild ordered.
        self._unordered: list[IndexModel] = []

    def _trip(self) -> None:
        if counted():
            self._stats.round_trips += 1

    async def _page(
        self, query: dict[str, Any], spec: SortSpec, page: PageRequest
    ) -> tuple[list[dict[str, Any]], list[str], bool]:
        after = spec.after_values(page.after) if page.after else None
        if page.first == 0:
            return [], [], await self._exists(spec.page_query(query, after))
        if self.windows.enabled:
            index = self._window_index(query)
            unbounded = spec.page_query(query, after) if index is not None else None

            async def read(
                q: dict[str, Any], sort: list[tuple[str, int]], limit: int
            ) -> list[dict[str, Any]]:
                # Windows only: a short list's plain read is small whichever index serves it
                # (the hint's planning cost more there: 10,000 jobs, bench.sorted_pages).
                return await self._read_sorted(
                    q, sort, limit, hint=None if q == unbounded else index
                )

            docs = await self.windows.read(
                query, spec, after, page.first + 1, list_key(query), read
            )
        else:
            docs = await self._read_sorted(
                spec.page_query(query, after), spec.mongo_sort, page.first + 1
            )
        has_next = len(docs) > page.first
        docs = docs[: page.first]
        return docs, [spec.cursor_for(d) for d in docs], has_next

    def _window_index(self, query: dict[str, Any]) -> str | None:
        """The ordered index a window of this list is read through, named (``hint``) where
        the planner picked another: a filter on two or more of ``WINDOW_INDEXES``' fields
        and nothing else, on a server that needs ordered indexes. DocumentDB took a (status,
        lease) index for a model's FAILED jobs, reading every FAILED entry; the first of the
        fields in ``WINDOW_INDEXES`` order is named instead. On one field it takes that
        field's ordered index itself (tests/test_realdb_filtered_windows.py checks both),
        and a hint costs it planning time: 0.3-0.5 ms a read, about what the window's read
        costs (PostgreSQL's EXPLAIN ANALYZE, 100,000 jobs)."""
        if not self.ordered_indexes or not query:
            return None
        fields = set(list_key(query).split(","))
        if len(fields) < 2 or not fields <= set(self.WINDOW_INDEXES):
            return None  # other conditions (a date range, ids) may narrow more: the planner's
        return next(index for field, index in self.WINDOW_INDEXES.items() if field in fields)

    async def _read_sorted(
        self,
        query: dict[str, Any],
        sort: list[tuple[str, int]],
        limit: int,
        hint: str | None = None,
    ) -> list[dict[str, Any]]:
        self._trip()
        cursor = self._c.find(query).sort(sort).limit(limit)
        if hint is not None:
            cursor = cursor.hint(hint)
        docs: list[dict[str, Any]] = await cursor.to_list(None)
        return docs

    async def _exists(self, query: dict[str, Any]) -> bool:
        self._trip()
        return await self._c.find_one(query, projection={"_id": 1}) is not None

    async def _count(self, query: dict[str, Any]) -> int:
        self._trip()
        return int(await self._c.count_documents(query))

    async def _create_indexes(self, indexes: list[IndexModel]) -> None:
        # Made unordered by an earlier release: still serves meanwhile, rebuilt by
        # ``rebuild_unordered_indexes`` (outside the start-up's per-call bound).
        self._unordered.extend(await create_missing_indexes(self._c, indexes))

    async def rebuild_unordered_indexes(self) -> None:
        """Rebuild, ordered, the indexes ``ensure_indexes`` found unordered (an earlier
        release's, on DocumentDB: server.py), each within ``INDEX_REBUILD_TIMEOUT`` rather
        than the storage's per-call bound (a build reads the whole collection): defined on
        the base class, so ``bounded_methods`` leaves it alone. The server answered the
        start-up just before; one that goes away meanwhile is ``DatabaseUnavailable``."""
        while self._unordered:
            try:
                with pymongo.timeout(INDEX_REBUILD_TIMEOUT):
                    await rebuild_index(self._c, self._unordered[0])
            except PyMongoError as error:
                # No bound named: under Motor the client's timeoutMS, not this one, applies.
                translated = unavailable(error, None)
                if translated is None:
                    raise
                raise translated from error
            self._unordered.pop(0)

    async def _conditional(
        self, query: dict[str, Any], changes: Mapping[str, Any], what: str
    ) -> dict[str, Any] | None:
        """``$set`` ``changes`` (and bump ``rev``) if the document matches ``query`` (which
        names its ``_id``); the document after, or None. ``what`` says what is being changed,
        in the ConflictError of a write the server kept refusing (``retry_transient``).

        Where the claim guard is on (conditional updates not atomic across connections), the
        writer first claims the revision it read and updates filtered on it, so concurrent
        conditional updates, and checked ones (``_update_checked``), exclude each other.
        Raises ``DuplicateKeyError``/``OperationFailure`` from a unique index unchanged (the
        caller knows which rule that is).
        """
        if not self._guard.enabled:
            update: dict[str, Any] = {"$inc": {"rev": 1}}
            if changes:
                update["$set"] = changes
            self._trip()
            doc: dict[str, Any] | None = await retry_transient(
                lambda: self._c.find_one_and_update(
                    query, update, return_document=ReturnDocument.AFTER
                ),
                what,
            )
            return doc
        waits = self._claim_waits()
        for attempt in range(MAX_UPDATE_ATTEMPTS):
            self._trip()
            current = await self._c.find_one(query)
            if current is None:
                return None
            rev = int(current.get("rev", 0))
            claimed, doc = await self._write_claimed(
                current["_id"], {**query, "rev": rev}, rev, changes
            )
            if doc is not None:
                return doc
            if not claimed and not await waits.wait(attempt):
                break
        raise _too_many_writers(query["_id"])

    def _claim_waits(self) -> ClaimWaits:
        # Waiting out other writers ends in a ConflictError before the operation's deadline
        # (``timeout``), which would otherwise report a busy record as an unavailable database.
        return ClaimWaits(None if self.timeout is None else time.monotonic() + self.timeout / 2)

    async def _write_claimed(
        self, record_id: Any, query: dict[str, Any], rev: int, changes: Mapping[str, Any]
    ) -> tuple[bool, dict[str, Any] | None]:
        """With the claim guard: claim revision ``rev`` of the record, ``$set`` ``changes``
        (moving it to ``rev + 1``) where it still matches ``query``, and drop the claim.
        Whether the claim was had, and the document after (None if nothing matched)."""
        claim = f"{self._c.name}:{record_id}:{rev}"
        if not await self._claim(claim):
            return False, None
        try:
            self._trip()
            doc: dict[str, Any] | None = await self._c.find_one_and_update(
                {"_id": record_id, **query},
                {"$set": {**changes, "rev": rev + 1}},
                return_document=ReturnDocument.AFTER,
            )
        finally:
            self._trip()
            await self._guard.claims.delete_one({"_id": claim})
        return True, doc

    async def _update_checked(
        self,
        record_id: str,
        allowed: Collection[str],
        check: Callable[[dict[str, Any]], dict[str, Any]],
        reads: Collection[str],
        where: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Like ``_conditional``, for a change that depends on what is stored (a merge that must
        keep the record within a limit): ``check(current)`` returns the ``$set`` changes or
        raises, and the write lands only if the record is still at the revision it was checked
        on. Two concurrent merges that each fit can then never both land when together they
        do not: the second one's write matches nothing, and it is checked again on a fresh read.
        Only the fields in ``reads`` (and status, rev) are read: a job's hyperparameters can be
        large, and a progress report must not fetch them. ``where``: equality conditions the
        record must also meet (None when it does not).
        """
        where = dict(where or {})
        projection = {name: 1 for name in ["status", "rev", *reads]}
        waits = self._claim_waits()
        for attempt in range(MAX_UPDATE_ATTEMPTS):
            self._trip()
            current = await self._c.find_one({"_id": record_id, **where}, projection=projection)
            if current is None or current["status"] not in allowed:
                return None
            changes = check(current)
            at_rev: dict[str, Any] = {
                **where,
                **({"rev": current["rev"]} if "rev" in current else {"rev": {"$exists": False}}),
            }
            rev = int(current.get("rev", 0))
            if not self._guard.enabled:
                self._trip()
                doc: dict[str, Any] | None = await self._c.find_one_and_update(
                    {"_id": record_id, "status": {"$in": list(allowed)}, **at_rev},
                    {"$set": changes, "$inc": {"rev": 1}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is not None:
                    return doc
                continue
            claimed, doc = await self._write_claimed(record_id, at_rev, rev, changes)
            if doc is not None:
                return doc
            if not claimed and not await waits.wait(attempt):
                break
        raise _too_many_writers(record_id)

    async def _merge_within(
        self,
        record_id: str,
        allowed: Collection[str],
        changes: Mapping[str, Any],
        field: str,
        additions: Mapping[str, Any],
        limit: int,
        where: Mapping[str, Any] | None = None,
        pending: tuple[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """``$set`` ``changes`` and merge ``additions`` into the sub-document ``field`` (keys
        are validated: no '.' or '$', so each names exactly one entry), if the merged
        sub-document keeps at most ``limit`` keys; MergeLimitExceeded otherwise.
        ``pending``: (sub-document, list in it) of keys that a write under way will merge into
        ``field`` too (a training job's metric series lease): counted as stored."""

        def within_limit(current: dict[str, Any]) -> dict[str, Any]:
            stored = set((current.get(field) or {}).keys())
            if pending is not None:
                stored.update((current.get(pending[0]) or {}).get(pending[1]) or ())
            merged = len(stored | additions.keys())
            if merged > limit:
                raise MergeLimitExceeded(field, len(stored), merged, limit)
            return {**changes, **{f"{field}.{k}": v for k, v in additions.items()}}

        reads = [field] if pending is None else [field, pending[0]]
        return await self._update_checked(record_id, allowed, within_limit, reads, where)

    async def _claim(self, claim: str) -> bool:
        now = datetime.now(UTC)
        try:
            self._trip()
            await self._guard.claims.insert_one({"_id": claim, "at": now})
            return True
        except DuplicateKeyError:
            pass
        self._trip()
        held = await self._guard.claims.find_one({"_id": claim})
        if held is not None and held["at"].replace(tzinfo=UTC) < now - STALE_CLAIM_AFTER:
            log.warning("clearing stale update claim %s from %s", claim, held["at"])
            self._trip()
            await self._guard.claims.delete_one({"_id": claim, "at": held["at"]})
        return False
