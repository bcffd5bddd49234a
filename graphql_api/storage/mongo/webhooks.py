"""Webhooks in MongoDB: collection ``webhooks`` (``_id`` = the webhook id; the signing secret,
the filters, the change log cursor and a revision), the delivery log ``webhook_deliveries``
(one document per message to one webhook: ``_id`` = ``<webhook id>.<seq>``, overwritten by
each attempt). Which instance delivers is a leader lease (``leaders.py``, lease ``webhooks``;
``graphql_api.webhooks.dispatcher``).

Every read is by ``_id`` or served by an index (``storage/mongo/query_shapes.py``): the
delivery log's pages by ``delivery_webhook_newest`` and ``delivery_webhook_status_newest``
(made by the first ``insert``, not at start-up); ``webhooks`` is read whole, and holds at
most ``MAX_WEBHOOKS`` documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument

from graphql_api.domain.events import ChangeKind
from graphql_api.domain.queries import Page, PageRequest
from graphql_api.domain.webhooks import (
    Delivery,
    DeliveryStatus,
    Webhook,
    delivery_id,
    test_delivery_prefix,
)
from graphql_api.storage.base import StoreStats
from graphql_api.storage.mongo.collection import (
    MongoCollection,
    UpdateGuard,
    create_missing_indexes,
)
from graphql_api.storage.mongo.failures import bounded_methods
from graphql_api.storage.mongo.keyset import SortField, SortSpec

NEWEST = SortSpec(
    "webhookDeliveries:newest",
    (SortField("created_at", -1, "datetime"), SortField("_id", -1)),
)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _millis(value: datetime) -> datetime:
    # What MongoDB keeps of a date: the keyset cursor compares stored values with it.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _webhook_doc(webhook: Webhook) -> dict[str, Any]:
    return {
        "_id": webhook.webhook_id,
        "url": webhook.url,
        "secret": webhook.secret,
        "kinds": [k.value for k in webhook.kinds],
        "model_names": list(webhook.model_names),
        "job_statuses": list(webhook.job_statuses),
        "cursor": webhook.cursor,
        "rev": webhook.revision,
        "created_at": webhook.created_at,
        "created_by": webhook.created_by,
    }


def _webhook(doc: Mapping[str, Any]) -> Webhook:
    return Webhook(
        webhook_id=doc["_id"],
        url=doc["url"],
        secret=doc["secret"],
        kinds=tuple(ChangeKind(k) for k in doc.get("kinds") or ()),
        model_names=tuple(doc.get("model_names") or ()),
        job_statuses=tuple(doc.get("job_statuses") or ()),
        cursor=int(doc["cursor"]),
        revision=int(doc.get("rev", 0)),
        created_at=_utc(doc["created_at"]),
        created_by=doc.get("created_by"),
    )


def _delivery_doc(delivery: Delivery) -> dict[str, Any]:
    return {
        "_id": delivery.delivery_id,
        "webhook_id": delivery.webhook_id,
        "seq": delivery.seq,
        "message_id": delivery.message_id,
        "type": delivery.event_type,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "response_code": delivery.response_code,
        "latency_ms": delivery.latency_ms,
        "error": delivery.error,
        "created_at": _millis(delivery.created_at),
        "updated_at": delivery.updated_at,
    }


def _delivery(doc: Mapping[str, Any]) -> Delivery:
    return Delivery(
        delivery_id=doc["_id"],
        webhook_id=doc["webhook_id"],
        seq=int(doc["seq"]),
        message_id=doc["message_id"],
        event_type=doc["type"],
        status=DeliveryStatus(doc["status"]),
        attempts=int(doc["attempts"]),
        response_code=doc.get("response_code"),
        latency_ms=doc.get("latency_ms"),
        error=doc.get("error"),
        created_at=_utc(doc["created_at"]),
        updated_at=_utc(doc["updated_at"]),
    )


@bounded_methods
class MongoWebhookStore(MongoCollection):
    def __init__(
        self, webhooks: Any, deliveries: Any, stats: StoreStats, guard: UpdateGuard
    ) -> None:
        super().__init__(webhooks, stats, guard)
        self._deliveries = deliveries

    async def _ensure_indexes(self) -> None:
        """The delivery log's indexes (idempotent): made before a webhook is stored, so every
        delivery has them, and never at start-up for databases without webhooks."""
        await create_missing_indexes(
            self._deliveries,
            (
                IndexModel(
                    [("webhook_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
                    name="delivery_webhook_newest",
                ),
                IndexModel(
                    [
                        ("webhook_id", ASCENDING),
                        ("status", ASCENDING),
                        ("created_at", DESCENDING),
                        ("_id", DESCENDING),
                    ],
                    name="delivery_webhook_status_newest",
                ),
            ),
        )

    async def insert(self, webhook: Webhook) -> None:
        await self._ensure_indexes()
        self._trip()
        await self._c.insert_one(_webhook_doc(webhook))

    async def get(self, webhook_id: str) -> Webhook | None:
        self._trip()
        doc = await self._c.find_one({"_id": webhook_id})
        return None if doc is None else _webhook(doc)

    async def all(self) -> list[Webhook]:
        self._trip()
        docs = await self._c.find({}).to_list(None)
        return sorted((_webhook(d) for d in docs), key=lambda w: (w.created_at, w.webhook_id))

    async def count(self) -> int:
        return await self._count({})

    async def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        kinds: Sequence[ChangeKind] | None = None,
        model_names: Sequence[str] | None = None,
        job_statuses: Sequence[str] | None = None,
        cursor: int | None = None,
    ) -> Webhook | None:
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = url
        if kinds is not None:
            changes["kinds"] = [k.value for k in kinds]
        if model_names is not None:
            changes["model_names"] = list(model_names)
        if job_statuses is not None:
            changes["job_statuses"] = list(job_statuses)
        if cursor is not None:
            changes["cursor"] = cursor
        self._trip()
        doc = await self._c.find_one_and_update(
            {"_id": webhook_id},
            {"$set": changes, "$inc": {"rev": 1}} if changes else {"$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _webhook(doc)

    async def advance_cursor(self, webhook_id: str, revision: int, cursor: int) -> bool:
        self._trip()
        result = await self._c.update_one(
            {"_id": webhook_id, "rev": revision, "cursor": {"$lt": cursor}},
            {"$set": {"cursor": cursor}},
        )
        return bool(result.matched_count)

    async def delete(self, webhook_id: str) -> Webhook | None:
        self._trip()
        doc = await self._c.find_one_and_delete({"_id": webhook_id})
        if doc is None:
            return None
        self._trip()
        await self._deliveries.delete_many({"webhook_id": webhook_id})
        return _webhook(doc)

    async def save_delivery(self, delivery: Delivery) -> Delivery:
        self._trip()
        await self._deliveries.replace_one(
            {"_id": delivery.delivery_id}, _delivery_doc(delivery), upsert=True
        )
        return delivery

    async def trim_deliveries(self, webhook_id: str, below_seq: int, keep_tests: int) -> int:
        # Ranges of _id (the entries of one webhook's events sort as their sequence numbers,
        # its pings share a prefix): served by the _id index, whatever the log's size.
        self._trip()
        events = {
            "_id": {"$gte": delivery_id(webhook_id, 0), "$lt": delivery_id(webhook_id, below_seq)}
        }
        deleted = int((await self._deliveries.delete_many(events)).deleted_count)
        prefix = test_delivery_prefix(webhook_id)
        # The prefix's end: its last character's successor ('_' -> '`').
        pings = {"_id": {"$gte": prefix, "$lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)}}
        self._trip()
        oldest_kept = (
            await self._deliveries.find(pings, {"created_at": 1})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .skip(keep_tests)
            .limit(1)
            .to_list(None)
        )
        if oldest_kept:
            self._trip()
            older = {**pings, "created_at": {"$lte": oldest_kept[0]["created_at"]}}
            deleted += int((await self._deliveries.delete_many(older)).deleted_count)
        return deleted

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        self._trip()
        doc = await self._deliveries.find_one({"_id": delivery_id})
        return None if doc is None else _delivery(doc)

    async def deliveries(
        self, webhook_id: str, status: DeliveryStatus | None, page: PageRequest
    ) -> Page[Delivery]:
        query: dict[str, Any] = {"webhook_id": webhook_id}
        if status is not None:
            query["status"] = status.value
        if page.after:
            query = {"$and": [query, NEWEST.after_filter(page.after)]}
        if page.first == 0:
            self._trip()
            found = await self._deliveries.find_one(query, projection={"_id": 1})
            return Page([], [], found is not None)
        self._trip()
        docs = (
            await self._deliveries.find(query)
            .sort(NEWEST.mongo_sort)
            .limit(page.first + 1)
            .to_list(None)
        )
        has_next = len(docs) > page.first
        docs = docs[: page.first]
        return Page([_delivery(d) for d in docs], [NEWEST.cursor_for(d) for d in docs], has_next)

    async def count_deliveries(self, webhook_id: str, status: DeliveryStatus | None) -> int:
        query: dict[str, Any] = {"webhook_id": webhook_id}
        if status is not None:
            query["status"] = status.value
        self._trip()
        return int(await self._deliveries.count_documents(query))
