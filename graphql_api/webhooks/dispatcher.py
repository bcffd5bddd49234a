"""Webhook deliveries in the server: each webhook a durable subscriber of the change log.

One instance delivers at a time: the holder of the leader lease ``webhooks`` (``LeaderStore``,
the ``leaders`` collection the liveness sweep's lease is in too; taken and renewed by one
conditional write every ``poll_interval``, lasting ``lease_seconds``). The others renew
nothing and deliver nothing; when the holder dies, its lease expires and the next instance to
try takes it, and starts from each webhook's stored cursor. A holder that fails to renew
(another took the lease, or the database is away) stops its deliveries at once. Its lease and
its deliveries are background work: no request's round trips (``uncounted``).

Per webhook one task, with at most one request in flight: it reads the log from the
webhook's cursor through a ``LogTailer`` (contiguous: never skips an event appended late),
hands each event the webhook's filters take to ``deliver_event`` (retries with backoff and
full jitter, dead letter past the limit), and moves the stored cursor past each event only
after it was delivered, dead-lettered or filtered out, and only at the webhook's revision it
read (an update or replay meanwhile makes it start over from the stored webhook). So delivery
is at-least-once (a crash between a delivery and its cursor write repeats that one event, with
the same ``webhook-id``) and in log order per webhook, which is each record's order.

Bounded: tasks are at most the webhooks stored (``MAX_WEBHOOKS``), each holds one event batch
and one request (bounded by the sender's timeout); a hanging receiver delays only its own
webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from graphql_api.domain.events import ChangeEvent, EntityKind
from graphql_api.domain.webhooks import DeliveryStatus, Webhook, delivery_id
from graphql_api.live.tailer import LogTailer
from graphql_api.services.webhooks import record_attempt
from graphql_api.storage.base import Storage, uncounted
from graphql_api.webhooks.delivery import Attempt, Send, Target, deliver_event
from graphql_api.webhooks.payload import matches
from graphql_api.webhooks.retry import RetryPolicy

log = logging.getLogger("mltrain.webhooks")

LEASE = "webhooks"
#: Events one read of the log takes at most per webhook.
BATCH = 100
#: Job id -> model name lookups kept (job events carry the model id only).
MODEL_NAME_CACHE = 10_000


def instance_id() -> str:
    """Who holds the lease: host, process and a random part (a restarted process is new)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _target(webhook: Webhook) -> Target:
    return Target(
        webhook_id=webhook.webhook_id,
        url=webhook.url,
        secret=webhook.secret,
        kinds=frozenset(webhook.kinds),
        model_names=frozenset(webhook.model_names),
        job_statuses=frozenset(webhook.job_statuses),
    )


class _Changed(Exception):
    """The webhook changed (update, replay) or was deleted under the task."""


class WebhookDispatcher:
    def __init__(
        self,
        storage: Storage,
        send: Send,
        policy: RetryPolicy,
        *,
        poll_interval: float,
        lease_seconds: float,
        gap_grace: float,
        holder: str | None = None,
    ) -> None:
        self._storage = storage
        self._store = storage.webhooks
        self._leaders = storage.leaders
        self._send = send
        self._policy = policy
        self._poll = min(poll_interval, lease_seconds / 3)
        self._lease_seconds = lease_seconds
        self._gap_grace = gap_grace
        self.holder = holder or instance_id()
        self._task: asyncio.Task[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Each webhook task's wake-up: set by local appends and by every lease renewal.
        self._wakers: dict[str, asyncio.Event] = {}
        self._model_names: dict[str, str | None] = {}
        self.leading = False

    def notify(self, event: ChangeEvent | None = None) -> None:
        """A change was appended here: deliver it without waiting for the next poll (no
        database work: the webhooks' tasks read the log)."""
        for waker in list(self._wakers.values()):
            waker.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mltrain-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._stop_all()
        if self.leading:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._leaders.release(LEASE, self.holder)
            self.leading = False

    async def _stop_all(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        uncounted()  # background work (and the tasks it starts): no request's round trips
        while True:
            try:
                await self._step()
            except Exception:
                log.exception("webhook dispatcher step failed; retrying")
                self.leading = False
                await self._stop_all()
            await asyncio.sleep(self._poll)

    async def _step(self) -> None:
        now = datetime.now(UTC)
        held = await self._leaders.acquire(
            LEASE, self.holder, now, now + timedelta(seconds=self._lease_seconds)
        )
        if held and not self.leading:
            log.info("delivering webhooks (lease %r taken by %s)", LEASE, self.holder)
        if not held:
            if self.leading:
                log.warning("webhook lease lost: this instance stops delivering")
            self.leading = False
            await self._stop_all()
            return
        self.leading = True
        webhooks = {w.webhook_id: w for w in await self._store.all()}
        for webhook_id in [i for i in self._tasks if i not in webhooks]:
            self._tasks.pop(webhook_id).cancel()
        for webhook_id, task in list(self._tasks.items()):
            if task.done():
                del self._tasks[webhook_id]
        for webhook_id in webhooks:
            if webhook_id not in self._tasks:
                self._tasks[webhook_id] = asyncio.create_task(
                    self._deliver(webhook_id), name=f"mltrain-webhook-{webhook_id}"
                )
        # Wake the idle ones: new events, or their webhook changed on another instance.
        for waker in list(self._wakers.values()):
            waker.set()

    async def _deliver(self, webhook_id: str) -> None:
        waker = asyncio.Event()
        self._wakers[webhook_id] = waker
        try:
            while True:
                try:
                    await self._follow(webhook_id, waker)
                    return  # deleted
                except _Changed:
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook %s: delivery failed; starting over", webhook_id)
                    await asyncio.sleep(self._poll)
        finally:
            if self._wakers.get(webhook_id) is waker:
                del self._wakers[webhook_id]

    async def _model_name_of(self, model_id: str) -> str | None:
        if model_id not in self._model_names:
            if len(self._model_names) >= MODEL_NAME_CACHE:
                self._model_names.clear()
            version = await self._storage.model_versions.get(model_id)
            self._model_names[model_id] = None if version is None else version.model_name
        return self._model_names[model_id]

    async def _follow(self, webhook_id: str, waker: asyncio.Event) -> None:
        webhook = await self._store.get(webhook_id)
        if webhook is None:
            return
        target = _target(webhook)
        tailer = LogTailer(
            self._storage.events, webhook.cursor, gap_grace=self._gap_grace, batch=BATCH
        )
        while True:
            events, again = await tailer.poll()
            for event in events:
                if isinstance(event, ChangeEvent):
                    await self._handle(webhook, target, event)
                if not await self._store.advance_cursor(webhook_id, webhook.revision, event.seq):
                    raise _Changed
            if again:
                continue
            waker.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await waker.wait()
            current = await self._store.get(webhook_id)
            if current is None:
                return
            if current.revision != webhook.revision:
                raise _Changed

    async def _handle(self, webhook: Webhook, target: Target, event: ChangeEvent) -> None:
        name = (
            event.model_name
            if event.entity is EntityKind.MODEL_VERSION
            else await self._model_name_of(event.model_id)
        )
        if not matches(
            event,
            kinds=target.kinds,
            model_names=target.model_names,
            job_statuses=target.job_statuses,
            model_name=name,
        ):
            return
        record = "trainingJob" if event.entity is EntityKind.TRAINING_JOB else "modelVersion"
        event_type = f"{record}.{event.kind.value}"
        previous = await self._store.get_delivery(delivery_id(webhook.webhook_id, event.seq))

        async def logged(attempt: Attempt) -> None:
            nonlocal previous
            previous = await self._store.save_delivery(
                record_attempt(
                    previous,
                    webhook.webhook_id,
                    event_type,
                    attempt,
                    self._policy,
                    datetime.now(UTC),
                )
            )

        # Failures logged by a run that stopped while retrying it (a restart, a takeover)
        # count toward the dead letter: MLTRAIN_WEBHOOK_MAX_ATTEMPTS in all, not per run. (The
        # log keeps one total per message: a replayed message that failed again before a
        # restart also counts its earlier series, so it is dead-lettered sooner, never later.)
        failed = (
            previous.attempts
            if previous is not None and previous.status is DeliveryStatus.RETRYING
            else 0
        )
        await deliver_event(target, event, self._send, self._policy, logged, failed=failed)
