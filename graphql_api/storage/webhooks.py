"""The storage contract of webhooks and their delivery log (MongoDB: ``mongo/webhooks.py``;
the delivering instance's lease is a leader lease, ``storage.base.LeaderStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from graphql_api.domain.events import ChangeKind
from graphql_api.domain.queries import Page, PageRequest
from graphql_api.domain.webhooks import Delivery, DeliveryStatus, Webhook


class WebhookStore(Protocol):
    async def insert(self, webhook: Webhook) -> None:
        """Store a new webhook (its id is new: random)."""

    async def get(self, webhook_id: str) -> Webhook | None: ...

    async def all(self) -> list[Webhook]:
        """Every webhook, oldest first (at most ``MAX_WEBHOOKS`` are ever stored)."""

    async def count(self) -> int: ...

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
        """Set the given fields and bump the revision; the webhook after, None if none."""

    async def advance_cursor(self, webhook_id: str, revision: int, cursor: int) -> bool:
        """Move the cursor to ``cursor`` if the webhook is still at ``revision`` (not changed
        or replayed since it was read) and the cursor is below it; whether it moved."""

    async def delete(self, webhook_id: str) -> Webhook | None:
        """Delete the webhook and its delivery log; the webhook as it was, None if none."""

    async def save_delivery(self, delivery: Delivery) -> Delivery:
        """Write ``delivery`` (its attempts, last response code, latency, error and status)
        over the stored one with its id, or insert it."""

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    async def trim_deliveries(self, webhook_id: str, below_seq: int, keep_tests: int) -> int:
        """Delete the webhook's entries of events below ``below_seq`` and all but its newest
        ``keep_tests`` test pings; how many were deleted."""

    async def deliveries(
        self, webhook_id: str, status: DeliveryStatus | None, page: PageRequest
    ) -> Page[Delivery]:
        """The webhook's deliveries, newest first (keyset pages), with this status if given."""

    async def count_deliveries(self, webhook_id: str, status: DeliveryStatus | None) -> int: ...
