"""Webhooks as the domain knows them: a target URL, its signing secret, its filters, and its
cursor into the change log; and the delivery log's entries (docs/webhooks.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from graphql_api.domain.events import ChangeKind

#: Webhooks one database keeps at most: every instance's delivering loop and the `webhooks`
#: list are bounded by it (createWebhook refuses past it).
MAX_WEBHOOKS = 100
#: Items of each filter list (events, modelNames, jobStatuses).
MAX_FILTER_ITEMS = 100
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    url: str
    #: The signing secret (``whsec_...``): stored as is, since every delivery is signed with it
    #: (docs/security.md says how it is protected); shown to the client once, at creation.
    secret: str
    kinds: tuple[ChangeKind, ...]
    model_names: tuple[str, ...]
    job_statuses: tuple[str, ...]
    #: The last change log sequence number handled (delivered, dead-lettered or filtered out).
    cursor: int
    #: Bumped by every change of the webhook (update, replay): a delivering loop advances the
    #: cursor only at the revision it read, so it never overwrites a replay or an update.
    revision: int
    created_at: datetime
    created_by: str | None


class DeliveryStatus(StrEnum):
    #: Failed so far; retried after the backoff.
    RETRYING = "RETRYING"
    DELIVERED = "DELIVERED"
    #: Failed past the retry limit; the webhook's cursor moved on (redeliver it by hand).
    DEAD_LETTERED = "DEAD_LETTERED"


#: The event type of testWebhook's ping (no change log event).
TEST_EVENT_TYPE = "webhook.test"
#: testWebhook's pings a webhook's delivery log keeps, the newest (the change log's retention
#: run deletes the rest, as it deletes the deliveries of events the log no longer holds).
KEPT_TEST_PINGS = 100


def delivery_id(webhook_id: str, seq: int) -> str:
    """The log entry of event ``seq``'s message to the webhook. Zero-padded: the log's pages
    order by time, then by id (two deliveries in one millisecond), and the ids of one webhook
    then sort as their sequence numbers do (a range of them is a range of events)."""
    return f"{webhook_id}.{seq:019d}"


def test_delivery_prefix(webhook_id: str) -> str:
    """What every testWebhook ping's entry id starts with (then a random token)."""
    return f"{webhook_id}.test_"


@dataclass(frozen=True)
class Delivery:
    """One message to one webhook: an event of the log (``seq``) or a test ping (``seq`` 0),
    with its attempts so far."""

    delivery_id: str
    webhook_id: str
    seq: int
    message_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    response_code: int | None
    latency_ms: float | None
    error: str | None
    created_at: datetime
    updated_at: datetime
