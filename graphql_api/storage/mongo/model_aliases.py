"""Aliases of a model name (``champion``, ``staging``), in its registry document.

They live next to the production pointer in ``model_registry`` (``{_id: <model name>,
aliases: {<alias>: <model id>}, ...}``), so each move is one ``find_one_and_update`` filtered on
the alias's current value: a compare-and-set on one document, the atomicity every supported
server has. The pointer's own fields are not touched (its compare-and-set is on ``revision``),
so alias moves and deployments never refuse each other. Alias names are checked by the service
(``domain/aliases.py``) to be safe field names (no ``.``, no ``$``).

On FerretDB v1, where conditional updates are not atomic across connections (the claim guard),
two concurrent moves of one alias could both succeed; the production pointer is guarded there,
aliases are not (docs/real-server.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ReturnDocument

from graphql_api.storage.mongo.collection import MongoCollection, retry_transient
from graphql_api.storage.mongo.failures import bounded_methods


@bounded_methods
class MongoModelAliases(MongoCollection):
    _registry: Any

    async def aliases_of(self, model_names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each name's aliases (alias -> model id), one round trip; {} for a name without."""
        found: dict[str, dict[str, str]] = {name: {} for name in model_names}
        if not model_names:
            return found
        self._trip()
        cursor = self._registry.find(
            {"_id": {"$in": list(model_names)}}, projection={"aliases": True}
        )
        async for doc in cursor:
            found[doc["_id"]] = dict(doc.get("aliases") or {})
        return found

    async def move_alias(
        self,
        model_name: str,
        alias: str,
        model_id: str | None,
        expected: str | None,
        limit: int,
    ) -> bool:
        """Compare-and-set: point ``alias`` at ``model_id`` (None: delete it) if it names
        ``expected`` now (None: if it does not exist, and the name has fewer than ``limit``
        aliases). The name's registry document must exist (``production_pointer`` creates it).
        Whether it moved."""
        path = f"aliases.{alias}"
        # {path: None} matches a missing field too: "no such alias yet".
        query: dict[str, Any] = {"_id": model_name, path: expected}
        update: dict[str, Any]
        if model_id is None:
            update = {"$unset": {path: ""}, "$inc": {"alias_count": -1}}
        elif expected is None:
            # A new alias: counted in the same write, so the limit holds under races too.
            query["alias_count"] = {"$not": {"$gte": limit}}
            update = {"$set": {path: model_id}, "$inc": {"alias_count": 1}}
        else:
            update = {"$set": {path: model_id}}
        self._trip()
        doc = await retry_transient(
            lambda: self._registry.find_one_and_update(
                query, update, return_document=ReturnDocument.AFTER
            ),
            "moving an alias",
        )
        return doc is not None
