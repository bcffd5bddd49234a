"""Webhooks (admin use cases): create, change, delete, list, test, redeliver and replay.

Every input is checked before anything is written, so a refused request changes nothing. The
secret is returned by ``create`` once; the API never shows it again. Deliveries themselves
run in the background (``graphql_api.webhooks.dispatcher``); ``test`` and ``redeliver`` make
one attempt now, in the request, bounded by the sender's timeout.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson

from graphql_api.domain import text
from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.errors import NotFoundError, ValidationError, ValidationRule
from graphql_api.domain.events import ChangeEvent, ChangeKind
from graphql_api.domain.queries import Page, PageRequest
from graphql_api.domain.webhooks import (
    KEPT_TEST_PINGS,
    MAX_FILTER_ITEMS,
    MAX_URL_LENGTH,
    MAX_WEBHOOKS,
    TEST_EVENT_TYPE,
    Delivery,
    DeliveryStatus,
    Webhook,
    delivery_id,
    test_delivery_prefix,
)
from graphql_api.live import cursor as log_cursor
from graphql_api.storage.base import EventStore
from graphql_api.storage.webhooks import WebhookStore
from graphql_api.webhooks.delivery import Attempt, Send
from graphql_api.webhooks.payload import body, message_id
from graphql_api.webhooks.retry import RetryPolicy
from graphql_api.webhooks.signing import headers, new_secret
from graphql_api.webhooks.targets import TargetRefused, resolve_target


@dataclass(frozen=True)
class CreatedWebhook:
    secret: str  # shown once
    webhook: Webhook


def record_attempt(
    previous: Delivery | None,
    webhook_id: str,
    event_type: str,
    attempt: Attempt,
    policy: RetryPolicy,
    now: datetime,
) -> Delivery:
    """The delivery log entry after ``attempt`` (the engine's count of attempts, which starts
    again at 1 on a redelivery: the log keeps the total)."""
    ok = attempt.status_code is not None and 200 <= attempt.status_code < 300
    if ok:
        status = DeliveryStatus.DELIVERED
    elif attempt.attempt >= policy.max_attempts:
        status = DeliveryStatus.DEAD_LETTERED
    else:
        status = DeliveryStatus.RETRYING
    return Delivery(
        delivery_id=delivery_id(webhook_id, attempt.seq),
        webhook_id=webhook_id,
        seq=attempt.seq,
        message_id=attempt.message_id,
        event_type=event_type,
        status=status,
        attempts=(previous.attempts if previous else 0) + 1,
        response_code=attempt.status_code,
        latency_ms=round(attempt.latency_ms, 3),
        error=attempt.error,
        created_at=previous.created_at if previous else now,
        updated_at=now,
    )


class WebhookService:
    def __init__(
        self,
        store: WebhookStore,
        events: EventStore,
        send: Send,
        policy: RetryPolicy,
        *,
        allow_private: bool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._events = events
        self._send = send
        self.policy = policy
        self._allow_private = allow_private
        self._clock = clock

    # ---- checks --------------------------------------------------------------------------

    async def _check_url(self, url: str) -> str:
        if len(url) > MAX_URL_LENGTH:
            raise ValidationError(
                "url", f"at most {MAX_URL_LENGTH} characters", rule=ValidationRule.max_length
            )
        try:
            await resolve_target(url, allow_private=self._allow_private)
        except TargetRefused as refused:
            if refused.not_public:
                rule = ValidationRule.public_address
            elif "http or https" in str(refused):
                rule = ValidationRule.url_scheme
            else:
                rule = ValidationRule.url
            raise ValidationError("url", str(refused), rule=rule) from None
        return url

    @staticmethod
    def _check_list(values: Sequence[str], field: str) -> None:
        if len(values) > MAX_FILTER_ITEMS:
            raise ValidationError(
                field,
                f"at most {MAX_FILTER_ITEMS} items (got {len(values)})",
                rule=ValidationRule.max_items,
            )

    def _check_model_names(self, names: Sequence[str]) -> tuple[str, ...]:
        self._check_list(names, "modelNames")
        for index, name in enumerate(names):
            try:
                text.check_name(name)
            except text.PolicyError as error:
                raise ValidationError(
                    f"modelNames[{index}]", error.message, rule=error.rule
                ) from None
        return tuple(dict.fromkeys(names))

    def _check_kinds(self, kinds: Sequence[ChangeKind]) -> tuple[ChangeKind, ...]:
        self._check_list([k.value for k in kinds], "events")
        return tuple(dict.fromkeys(kinds))

    def _check_statuses(self, statuses: Sequence[TrainingStatus]) -> tuple[str, ...]:
        self._check_list([s.value for s in statuses], "jobStatuses")
        return tuple(dict.fromkeys(s.value for s in statuses))

    async def _get(self, webhook_id: str, field: str = "id") -> Webhook:
        webhook = await self._store.get(webhook_id)
        if webhook is None:
            raise NotFoundError("Webhook", webhook_id, field=field)
        return webhook

    # ---- use cases -----------------------------------------------------------------------

    async def create(
        self,
        url: str,
        kinds: Sequence[ChangeKind] = (),
        model_names: Sequence[str] = (),
        job_statuses: Sequence[TrainingStatus] = (),
        actor: str | None = None,
    ) -> CreatedWebhook:
        checked_kinds = self._check_kinds(kinds)
        names = self._check_model_names(model_names)
        statuses = self._check_statuses(job_statuses)
        await self._check_url(url)
        too_many = ValidationError(
            "url",
            f"at most {MAX_WEBHOOKS} webhooks are kept: delete one first",
            rule=ValidationRule.max_items,
        )
        if await self._store.count() >= MAX_WEBHOOKS:
            raise too_many
        secret = new_secret()
        webhook = Webhook(
            webhook_id="wh_" + secrets.token_hex(8),
            url=url,
            secret=secret,
            kinds=checked_kinds,
            model_names=names,
            job_statuses=statuses,
            # From now on: the changes made after it was created.
            cursor=await self._events.head(),
            revision=0,
            created_at=self._clock(),
            created_by=actor,
        )
        await self._store.insert(webhook)
        # Counted again after the insert: concurrent creates at the limit both see room
        # before, and then at least one of them sees too many here and takes its own back.
        if await self._store.count() > MAX_WEBHOOKS:
            await self._store.delete(webhook.webhook_id)
            raise too_many
        return CreatedWebhook(secret, webhook)

    async def update(
        self,
        webhook_id: str,
        url: str | None = None,
        kinds: Sequence[ChangeKind] | None = None,
        model_names: Sequence[str] | None = None,
        job_statuses: Sequence[TrainingStatus] | None = None,
    ) -> Webhook:
        checked_kinds = None if kinds is None else self._check_kinds(kinds)
        names = None if model_names is None else self._check_model_names(model_names)
        statuses = None if job_statuses is None else self._check_statuses(job_statuses)
        if url is not None:
            await self._check_url(url)
        await self._get(webhook_id)
        updated = await self._store.update(
            webhook_id, url=url, kinds=checked_kinds, model_names=names, job_statuses=statuses
        )
        if updated is None:
            raise NotFoundError("Webhook", webhook_id, field="id")
        return updated

    async def delete(self, webhook_id: str) -> Webhook:
        deleted = await self._store.delete(webhook_id)
        if deleted is None:
            raise NotFoundError("Webhook", webhook_id, field="id")
        return deleted

    async def all(self) -> list[Webhook]:
        return await self._store.all()

    async def get(self, webhook_id: str) -> Webhook | None:
        return await self._store.get(webhook_id)

    async def deliveries(
        self, webhook_id: str, status: DeliveryStatus | None, page: PageRequest
    ) -> Page[Delivery]:
        return await self._store.deliveries(webhook_id, status, page)

    async def trim_deliveries(self, floor: int) -> int:
        """Keep each webhook's delivery log within what can still be delivered: delete the
        entries of events the change log's retention deleted (up to ``floor``: they can no
        longer be redelivered or replayed) and all but the newest ``KEPT_TEST_PINGS`` test
        pings. Run after each retention run; how many entries were deleted."""
        deleted = 0
        for webhook in await self._store.all():
            deleted += await self._store.trim_deliveries(
                webhook.webhook_id, floor + 1, KEPT_TEST_PINGS
            )
        return deleted

    async def count_deliveries(self, webhook_id: str, status: DeliveryStatus | None) -> int:
        return await self._store.count_deliveries(webhook_id, status)

    async def replay(self, webhook_id: str, after: str) -> Webhook:
        """Deliver again every matching change after the cursor ``after`` (a change log cursor,
        as in payloads' ``data.cursor``): the webhook's cursor is set back (or forward) to it."""
        seq = log_cursor.decode(after, "after")
        floor = await self._events.floor()
        if seq < floor:
            raise ValidationError(
                "after",
                f"the change log no longer keeps the changes after this cursor (it keeps "
                f"those after {log_cursor.encode(floor)})",
                rule=ValidationRule.retention,
            )
        if seq > await self._events.head():
            raise ValidationError(
                "after", "is beyond the end of the change log", rule=ValidationRule.cursor
            )
        await self._get(webhook_id)
        replayed = await self._store.update(webhook_id, cursor=seq)
        if replayed is None:
            raise NotFoundError("Webhook", webhook_id, field="id")
        return replayed

    async def _attempt(self, webhook: Webhook, msg_id: str, raw: bytes, seq: int) -> Attempt:
        sent = {
            "content-type": "application/json",
            **headers(webhook.secret, msg_id, int(time.time()), raw),
        }
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            code = await self._send(webhook.url, sent, raw)
        except Exception as failure:  # no answer: refused, reset, timed out, URL refused
            error = f"{type(failure).__name__}: {failure}"[:500]
        latency = (time.perf_counter() - started) * 1000
        return Attempt(seq, msg_id, 1, code, latency, error)

    async def test(self, webhook_id: str) -> Delivery:
        """Send a ``webhook.test`` message now (one attempt, signed as every delivery), and
        log it."""
        webhook = await self._get(webhook_id)
        now = self._clock()
        token = uuid.uuid4().hex[:16]
        msg_id = f"msg_{webhook.webhook_id}_test_{token}"
        raw = orjson.dumps(
            {
                "type": TEST_EVENT_TYPE,
                "timestamp": now.isoformat().replace("+00:00", "Z"),
                "data": {"webhookId": webhook.webhook_id},
            }
        )
        attempt = await self._attempt(webhook, msg_id, raw, 0)
        entry = record_attempt(
            None, webhook.webhook_id, TEST_EVENT_TYPE, attempt, RetryPolicy(max_attempts=1), now
        )
        entry = replace(entry, delivery_id=f"{test_delivery_prefix(webhook.webhook_id)}{token}")
        return await self._store.save_delivery(entry)

    async def redeliver(self, id_: str) -> Delivery:
        """One more attempt at a logged delivery, now, with its message id; the log entry
        after it. A test message cannot be redelivered (send another)."""
        delivery = await self._store.get_delivery(id_)
        if delivery is None or delivery.seq == 0:
            raise NotFoundError("WebhookDelivery", id_, field="id")
        webhook = await self._get(delivery.webhook_id, field="id")
        found = await self._events.since(delivery.seq - 1, 1)
        event = found[0] if found else None
        if not isinstance(event, ChangeEvent) or event.seq != delivery.seq:
            raise ValidationError(
                "id",
                "the change log no longer keeps this delivery's change (retention)",
                rule=ValidationRule.retention,
            )
        attempt = await self._attempt(
            webhook, message_id(webhook.webhook_id, event.seq), body(event), event.seq
        )
        entry = record_attempt(
            delivery, webhook.webhook_id, delivery.event_type, attempt, self.policy, self._clock()
        )
        if entry.status is not DeliveryStatus.DELIVERED:
            # One manual attempt more does not start the retries over: it stays as it was.
            entry = replace(entry, status=delivery.status)
        return await self._store.save_delivery(entry)
