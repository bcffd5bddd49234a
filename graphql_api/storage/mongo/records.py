"""The operations every record store shares (insert, get, get_many, find, count and the
conditional update), over one collection, for one kind of record."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphql_api.domain.errors import ConflictError
from graphql_api.domain.queries import MetricOrder, Page, PageRequest
from graphql_api.domain.updates import Change
from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo.collection import (
    MongoCollection,
    UpdateGuard,
    is_duplicate_key,
    retry_transient,
)
from graphql_api.storage.mongo.documents import RecordMapping
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.keyset import SortSpec
from graphql_api.storage.mongo.metric_order import MetricKeyset
from graphql_api.storage.mongo.updates import update_of

R = TypeVar("R", bound=BaseModel)
#: The domain's filter and order of this kind of record.
W = TypeVar("W")
O = TypeVar("O")  # noqa: E741 (the order, beside R and W)


@bounded_methods
class MongoRecordStore(MongoCollection, Generic[R, W, O]):
    """One kind of record in one collection. Subclasses add what only their kind has, and
    say which unique rule an insert broke (``_duplicate``)."""

    def __init__(
        self,
        collection: Any,
        stats: StoreStats,
        guard: UpdateGuard,
        *,
        mapping: RecordMapping[R],
        query: Callable[[W], dict[str, Any]],
        sorts: Mapping[O, SortSpec],
        inserting: str,
        changing: str,
    ) -> None:
        super().__init__(collection, stats, guard)
        self._mapping = mapping
        self._query = query
        self._sorts = sorts
        #: What an insert and an update do, for the ConflictError of a write the server kept
        #: refusing (``retry_transient``): "registering the version".
        self._inserting = inserting
        self._changing = changing
        #: Where a write under way lists the metric keys it will add (``_merge_within``).
        self._pending_merge: tuple[str, str] | None = None

    async def _insert(self, record: R, extra: Mapping[str, Any] | None = None) -> None:
        """Store a new record (with the storage-only fields ``extra``); the ConflictError of
        ``_duplicate`` when a unique index refuses it."""
        doc = {**self._mapping.to_doc(record), **(extra or {})}
        self._trip()
        try:
            await retry_transient(lambda: self._c.insert_one(doc), self._inserting)
        except (DuplicateKeyError, OperationFailure) as error:
            if not is_duplicate_key(error):
                raise
            raise await self._duplicate(record) from None

    async def _duplicate(self, record: R) -> ConflictError:
        raise NotImplementedError

    async def get(self, record_id: str) -> R | None:
        self._trip()
        doc = await self._c.find_one({"_id": record_id})
        return None if doc is None else self._mapping.from_doc(doc)

    async def get_many(self, record_ids: Sequence[str]) -> dict[str, R]:
        if not record_ids:
            return {}
        self._trip()
        docs = await self._c.find({"_id": {"$in": list(record_ids)}}).to_list(None)
        return {d["_id"]: self._mapping.from_doc(d) for d in docs}

    async def find(self, where: W, order: O | MetricOrder, page: PageRequest) -> Page[R]:
        if isinstance(order, MetricOrder):
            # The list's name, as its other orderings' cursors carry it ("modelVersions").
            items = next(iter(self._sorts.values())).name.partition(":")[0]
            keyset = MetricKeyset(items, order)
            docs, cursors, has_next = await keyset.page(self._query(where), page, self._read_sorted)
        else:
            docs, cursors, has_next = await self._page(self._query(where), self._sorts[order], page)
        return Page([self._mapping.from_doc(d) for d in docs], cursors, has_next)

    async def count(self, where: W) -> int:
        return await self._count(self._query(where))

    async def _update(
        self,
        record_id: str,
        sources: Collection[StrEnum],
        changes: Sequence[Change],
        *,
        where: Mapping[str, Any] | None = None,
        also_set: Mapping[str, Any] | None = None,
    ) -> R | None:
        """Apply ``changes`` (and the storage-only fields ``also_set``) if the record's status
        is one of ``sources`` and it matches ``where`` (field equalities); the record after, or
        None. With no changes, only the revision is bumped."""
        fields, merge = update_of(self._mapping, changes)
        fields.update(also_set or {})
        statuses = [s.value for s in sources]
        if merge is not None:
            # A checked merge conditions on the revision it read, and on ``where`` (a pending
            # change: see ``outbox.py``).
            doc = await self._merge_within(
                record_id,
                statuses,
                fields,
                self._mapping.stored_name("metrics"),
                merge.metrics,
                merge.limit,
                where=where or {},
                pending=self._pending_merge,
            )
        else:
            query = {"_id": record_id, "status": {"$in": statuses}, **(where or {})}
            doc = await self._conditional(query, fields, self._changing)
        return None if doc is None else self._mapping.from_doc(doc)
