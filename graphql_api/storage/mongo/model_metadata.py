"""A model version's lineage (the versions a job produced), in MongoDB.

A base of ``MongoModelVersionStore``, over the same collection. Its metadata (description,
tags, artifact) changes through the store's one ``update`` (``domain.updates.VersionMetadata``),
which bumps the revision, so a deployment that read the version before the change re-reads it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from graphql_api.domain.enums import ModelStatus
from graphql_api.domain.models import ModelVersion
from graphql_api.storage.mongo.collection import MongoCollection
from graphql_api.storage.mongo.documents import MODEL_VERSIONS
from graphql_api.storage.mongo.failures import bounded_methods


@bounded_methods
class MongoModelMetadata(MongoCollection):
    async def produced_by(self, job_ids: Sequence[str]) -> dict[str, list[ModelVersion]]:
        """Every version each job produced (``source_job_id``), newest first; one round trip.
        Not cut: registration keeps them to ``MAX_VERSIONS_PER_JOB`` per job."""
        found: dict[str, list[ModelVersion]] = {job_id: [] for job_id in job_ids}
        if not job_ids:
            return found
        self._trip()
        cursor = self._c.find({"source_job_id": {"$in": list(job_ids)}}).sort(
            [("created_date", DESCENDING), ("_id", DESCENDING)]
        )
        async for doc in cursor:
            found[doc["source_job_id"]].append(MODEL_VERSIONS.from_doc(doc))
        return found

    async def by_precedence(
        self,
        model_name: str,
        statuses: Collection[ModelStatus],
        below: tuple[str, str] | None,
        limit: int,
    ) -> list[ModelVersion]:
        """The name's versions in ``statuses``, highest SemVer precedence first (ties by id,
        highest first), after the (sort key, id) ``below``; at most ``limit``."""
        query: dict[str, Any] = {
            "model_name": model_name,
            "status": {"$in": [s.value for s in statuses]},
        }
        if below is not None:
            key, model_id = below
            query["$or"] = [
                {"version_sort_key": {"$lt": key}},
                {"version_sort_key": key, "_id": {"$lt": model_id}},
            ]
        self._trip()
        docs = (
            await self._c.find(query)
            .sort([("version_sort_key", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [MODEL_VERSIONS.from_doc(d) for d in docs]

    async def count_produced_by(self, job_id: str) -> int:
        self._trip()
        count: int = await self._c.count_documents({"source_job_id": job_id})
        return count

    async def _ensure_metadata_indexes(self) -> None:
        await self._create_indexes(
            [IndexModel([("source_job_id", ASCENDING)], name="source_job_id")]
        )
