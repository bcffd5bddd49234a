"""The registry's models: one entry per model name, listed from ``model_catalog``.

Every model name has a document ``{_id: <name>}`` in ``model_catalog``, written (if missing)
when a version is registered; names registered before it existed get theirs at start-up, once.
Listing names is a keyset page over that collection's ``_id``, one document per name, and a
page's counts are one aggregation over that page's versions only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError, OperationFailure

from graphql_api.domain.queries import Page, PageRequest
from graphql_api.domain.values import utc_now
from graphql_api.storage.mongo.client import aggregate
from graphql_api.storage.mongo.collection import MongoCollection, is_duplicate_key, retry_transient
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.keyset import SortField, SortSpec

MODEL_SORT = SortSpec("models:NAME_ASC", (SortField("_id", ASCENDING),))
#: Documents that are not a name's (the back-fill marker) have ids below every model name
#: (names start with a visible character), so listings start above them.
_BACKFILLED = "\x01catalog-backfilled"
_FIRST_NAME = "\x01\uffff"


@bounded_methods
class MongoModelCatalog(MongoCollection):
    _registry: Any

    @property
    def _catalog(self) -> Any:
        return self._registry.database["model_catalog"]

    async def add_model_name(self, model_name: str) -> None:
        """Record the name in the catalog (idempotent; concurrent callers: one insert wins)."""
        self._trip()
        try:
            await retry_transient(
                lambda: self._catalog.update_one(
                    {"_id": model_name}, {"$setOnInsert": {"since": utc_now()}}, upsert=True
                ),
                "recording the model name",
            )
        except (DuplicateKeyError, OperationFailure) as error:
            if not is_duplicate_key(error):
                raise

    async def model_names(self, name_contains: str | None, page: PageRequest) -> Page[str]:
        """Model names in code point order, a keyset page; ``name_contains`` (case-insensitive
        substring) reads every name's document (one per name): a bounded scan."""
        query: dict[str, Any] = {"_id": {"$gt": _FIRST_NAME}}
        if name_contains:
            query["_id"]["$regex"] = re.escape(name_contains)
            query["_id"]["$options"] = "i"
        if page.after:
            query = {"$and": [query, MODEL_SORT.after_filter(page.after)]}
        self._trip()
        docs = (
            await self._catalog.find(query, projection={"_id": True})
            .sort(MODEL_SORT.mongo_sort)
            .limit(page.first + 1)
            .to_list(None)
        )
        has_next = len(docs) > page.first
        docs = docs[: page.first]
        return Page([d["_id"] for d in docs], [MODEL_SORT.cursor_for(d) for d in docs], has_next)

    async def count_model_names(self, name_contains: str | None) -> int:
        query: dict[str, Any] = {"_id": {"$gt": _FIRST_NAME}}
        if name_contains:
            query["_id"]["$regex"] = re.escape(name_contains)
            query["_id"]["$options"] = "i"
        self._trip()
        count: int = await self._catalog.count_documents(query)
        return count

    async def model_stats(
        self, model_names: Sequence[str]
    ) -> dict[str, tuple[int, datetime | None]]:
        """For each name: how many versions, and the latest ``deployed_date``; one round trip
        over those names' versions only."""
        found: dict[str, tuple[int, datetime | None]] = {n: (0, None) for n in model_names}
        if not model_names:
            return found
        self._trip()
        pipeline = [
            {"$match": {"model_name": {"$in": list(model_names)}}},
            {
                "$group": {
                    "_id": "$model_name",
                    "n": {"$sum": 1},
                    "deployed": {"$max": "$deployed_date"},
                }
            },
        ]
        async for row in await aggregate(self._c, pipeline):
            deployed = row.get("deployed")
            found[row["_id"]] = (
                int(row["n"]),
                deployed.replace(tzinfo=UTC) if isinstance(deployed, datetime) else None,
            )
        return found

    async def _backfill_catalog(self) -> None:
        """Once per database: record every name registered before the catalog existed."""
        self._trip()
        if await self._catalog.find_one({"_id": _BACKFILLED}) is not None:
            return
        self._trip()
        pipeline = [{"$group": {"_id": "$model_name"}}]
        names = [row["_id"] async for row in await aggregate(self._c, pipeline)]
        for name in names:
            if isinstance(name, str):
                await self.add_model_name(name)
        self._trip()
        await self._catalog.update_one(
            {"_id": _BACKFILLED}, {"$set": {"names": len(names)}}, upsert=True
        )
