"""A model name's history in the change log: every event of every version of the name.

A base of ``MongoEventStore`` (the same collection). Model version events carry
``model_name``; an index over (``model_name``, ``_id``) serves a page of them in log order.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel

from graphql_api.domain.events import StoredEvent
from graphql_api.storage.mongo.collection import MongoCollection
from graphql_api.storage.mongo.failures import bounded_methods


@bounded_methods
class MongoModelHistory(MongoCollection):
    async def page_for_model(self, model_name: str, after: int, first: int) -> list[StoredEvent]:
        """The name's first ``first + 1`` events above ``after``, oldest first (the extra one
        says a next page exists); unreadable ones keep their place."""
        self._trip()
        docs = (
            await self._c.find({"model_name": model_name, "_id": {"$gt": after}})
            .sort([("_id", ASCENDING)])
            .limit(first + 1)
            .to_list(None)
        )
        return [self._read(doc) for doc in docs]

    async def count_for_model(self, model_name: str) -> int:
        self._trip()
        count: int = await self._c.count_documents({"model_name": model_name})
        return count

    def _read(self, doc: dict[str, Any]) -> StoredEvent:
        raise NotImplementedError  # MongoEventStore's

    async def _ensure_history_indexes(self) -> None:
        await self._create_indexes(
            [IndexModel([("model_name", ASCENDING), ("_id", ASCENDING)], name="model_name_seq")]
        )
