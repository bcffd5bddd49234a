"""Webhooks as GraphQL shows them: never the signing secret, except once in CreatedWebhook."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from graphql_api.context import Info
from graphql_api.domain import webhooks as domain
from graphql_api.domain.queries import Page, PageRequest
from graphql_api.live import cursor as log_cursor
from graphql_api.types import typed
from graphql_api.types.enums import ChangeKind, TrainingStatus
from graphql_api.types.errors import MutationError
from graphql_api.types.pagination import Connection

strawberry.enum(
    domain.DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="Where a delivery stands: RETRYING (failed so far, tried again after the "
    "backoff), DELIVERED (a 2xx answer), DEAD_LETTERED (failed MLTRAIN_WEBHOOK_MAX_ATTEMPTS "
    "times; the webhook moved on: redeliverWebhookDelivery sends it again).",
)


@strawberry.type(description="One message to one webhook and its attempts so far.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Pass to redeliverWebhookDelivery.")
    webhook_id: strawberry.ID
    message_id: str = strawberry.field(
        description="The `webhook-id` header: the same on every attempt and redelivery."
    )
    event_type: str = strawberry.field(
        description="The payload's `type` (e.g. trainingJob.COMPLETED; webhook.test)."
    )
    event_cursor: str | None = strawberry.field(
        description="The change log cursor of the change delivered (null: a test message)."
    )
    status: domain.DeliveryStatus
    attempts: int = strawberry.field(description="Attempts made, redeliveries included.")
    response_code: int | None = strawberry.field(
        description="The last attempt's HTTP status (null: no answer)."
    )
    latency_ms: float | None = strawberry.field(description="The last attempt's duration.")
    error: str | None = strawberry.field(
        description="Why the last attempt got no answer (refused, timed out, URL refused)."
    )
    created_at: datetime
    updated_at: datetime = strawberry.field(description="When the last attempt ended.")

    @classmethod
    def of(cls, delivery: domain.Delivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(delivery.delivery_id),
            webhook_id=strawberry.ID(delivery.webhook_id),
            message_id=delivery.message_id,
            event_type=delivery.event_type,
            event_cursor=log_cursor.encode(delivery.seq) if delivery.seq else None,
            status=delivery.status,
            attempts=delivery.attempts,
            response_code=delivery.response_code,
            latency_ms=delivery.latency_ms,
            error=delivery.error,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
        )


@strawberry.type(
    description="A URL told of changes (docs/webhooks.md): signed (Standard Webhooks), in "
    "change log order, at least once. The signing secret is shown only by createWebhook."
)
class Webhook:
    id: strawberry.ID
    url: str
    events: list[ChangeKind] = strawberry.field(description="Kinds it gets; empty: every kind.")
    model_names: list[str] = strawberry.field(description="Models it gets; empty: every model.")
    job_statuses: list[TrainingStatus] = strawberry.field(
        description="Only job changes leaving the job in one of these; empty: no such filter."
    )
    cursor: str = strawberry.field(
        description="The change log position it has handled up to (delivered, dead-lettered "
        "or filtered out); replayWebhook(after:) moves it."
    )
    created_at: datetime
    created_by: str | None = strawberry.field(description="The key that created it.")

    @classmethod
    def of(cls, webhook: domain.Webhook) -> Webhook:
        return cls(
            id=strawberry.ID(webhook.webhook_id),
            url=webhook.url,
            events=list(webhook.kinds),
            model_names=list(webhook.model_names),
            job_statuses=[TrainingStatus(s) for s in webhook.job_statuses],
            cursor=log_cursor.encode(webhook.cursor),
            created_at=webhook.created_at,
            created_by=webhook.created_by,
        )

    @typed.field(
        description="Its delivery log, newest first, keyset-paginated.",
        graphql_type=Connection[WebhookDelivery],
    )
    async def deliveries(
        self,
        info: Info,
        status: Annotated[
            domain.DeliveryStatus | None,
            strawberry.argument(description="Only deliveries in this status."),
        ] = None,
        first: Annotated[int, strawberry.argument(description="At most 100.")] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="endCursor of the previous page.")
        ] = None,
    ) -> Connection[WebhookDelivery]:
        webhooks = info.context.services.webhooks
        webhook_id = str(self.id)
        page = await webhooks.deliveries(webhook_id, status, PageRequest(first=first, after=after))
        shown = Page([WebhookDelivery.of(d) for d in page.items], page.cursors, page.has_next_page)
        return Connection.of(shown, lambda: webhooks.count_deliveries(webhook_id, status))


@strawberry.type(description="A new webhook and its signing secret: shown this once.")
class CreatedWebhook:
    secret: str = strawberry.field(
        description="`whsec_...`: verify every delivery's `webhook-signature` with it "
        "(docs/webhooks.md). Keep it now: it is never shown again."
    )
    webhook: Webhook


CreateWebhookResult = Annotated[
    CreatedWebhook | MutationError,
    strawberry.union("CreateWebhookResult", description="The new webhook, or why none was made."),
]
UpdateWebhookResult = Annotated[
    Webhook | MutationError,
    strawberry.union("UpdateWebhookResult", description="The webhook after, or why not."),
]
DeleteWebhookResult = Annotated[
    Webhook | MutationError,
    strawberry.union("DeleteWebhookResult", description="The deleted webhook, or why not."),
]
ReplayWebhookResult = Annotated[
    Webhook | MutationError,
    strawberry.union("ReplayWebhookResult", description="The webhook, moved back, or why not."),
]
TestWebhookResult = Annotated[
    WebhookDelivery | MutationError,
    strawberry.union("TestWebhookResult", description="The test message's delivery, or why not."),
]
RedeliverWebhookDeliveryResult = Annotated[
    WebhookDelivery | MutationError,
    strawberry.union(
        "RedeliverWebhookDeliveryResult", description="The delivery after the attempt, or why not."
    ),
]
