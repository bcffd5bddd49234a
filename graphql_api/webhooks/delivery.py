"""One webhook's deliveries, in change-log order: the engine a delivering instance runs per
webhook (not wired to the server yet: docs/webhooks.md).

``deliver_from`` reads the change log after the webhook's cursor and hands each matching event
to ``deliver_event``, one at a time, so a webhook gets events in log order (which is each
record's order: see docs/subscriptions.md). ``deliver_event`` signs the body (Standard
Webhooks), posts it, and retries a failure (no answer, or a status outside 2xx) after the
``RetryPolicy``'s backoff, with the same ``webhook-id`` and a fresh timestamp and signature
each time, until it is delivered or dead-lettered. Every attempt is reported to
``on_attempt`` (the delivery log: response code, latency, error). The cursor returned is the
last event handled (delivered, dead-lettered or filtered out): at-least-once, since a crash
before the cursor is stored repeats the event, never skips it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.storage.base import EventStore
from graphql_api.webhooks.payload import body, matches, message_id
from graphql_api.webhooks.retry import RetryPolicy
from graphql_api.webhooks.signing import headers

#: Posts ``body`` with ``headers`` to the URL; the response's status code. Raises on no answer.
Send = Callable[[str, dict[str, str], bytes], Awaitable[int]]


@dataclass(frozen=True)
class Target:
    """A webhook as its deliveries need it."""

    webhook_id: str
    url: str
    secret: str
    kinds: frozenset[ChangeKind] = frozenset()
    model_names: frozenset[str] = frozenset()
    job_statuses: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Attempt:
    """One attempt at delivering one event: what the delivery log shows."""

    seq: int
    message_id: str
    attempt: int
    status_code: int | None
    latency_ms: float
    error: str | None


class Outcome(StrEnum):
    DELIVERED = "DELIVERED"
    DEAD_LETTERED = "DEAD_LETTERED"


async def deliver_event(
    target: Target,
    event: ChangeEvent,
    send: Send,
    policy: RetryPolicy,
    on_attempt: Callable[[Attempt], Awaitable[None]],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    failed: int = 0,
) -> Outcome:
    """Send ``event`` until it is delivered or dead-lettered. ``failed``: attempts at it that
    already failed (a run that stopped while retrying it, from the delivery log): they count
    toward the dead letter, so a restart or a takeover does not start the count again."""
    raw = body(event)
    msg_id = message_id(target.webhook_id, event.seq)
    failures = failed
    while True:
        sent = {
            "content-type": "application/json",
            **headers(target.secret, msg_id, int(time.time()), raw),
        }
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            code = await send(target.url, sent, raw)
        except Exception as failure:  # no answer: refused, reset, timed out
            error = f"{type(failure).__name__}: {failure}"[:500]
        latency = (time.perf_counter() - started) * 1000
        await on_attempt(Attempt(event.seq, msg_id, failures + 1, code, latency, error))
        if code is not None and 200 <= code < 300:
            return Outcome.DELIVERED
        failures += 1
        delay = policy.delay(failures)
        if delay is None:
            return Outcome.DEAD_LETTERED
        await sleep(delay)


async def deliver_from(
    target: Target,
    events: EventStore,
    after: int,
    send: Send,
    policy: RetryPolicy,
    on_attempt: Callable[[Attempt], Awaitable[None]],
    model_name_of: Callable[[str], Awaitable[str | None]],
    *,
    batch: int = 100,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[int, list[tuple[int, Outcome]]]:
    """Deliver the events after ``after`` (one batch); the new cursor and each delivered or
    dead-lettered event's outcome. ``model_name_of``: a job's model name, from its model id
    (job events do not carry it)."""
    outcomes: list[tuple[int, Outcome]] = []
    cursor = after
    for event in await events.since(after, batch):
        if isinstance(event, ChangeEvent):
            name = (
                event.model_name
                if event.entity is EntityKind.MODEL_VERSION
                else await model_name_of(event.model_id)
            )
            if matches(
                event,
                kinds=target.kinds,
                model_names=target.model_names,
                job_statuses=target.job_statuses,
                model_name=name,
            ):
                outcome = await deliver_event(target, event, send, policy, on_attempt, sleep=sleep)
                outcomes.append((event.seq, outcome))
        # An unreadable event is passed over (subscriptions send a marker; a webhook has no
        # way to carry one yet).
        cursor = event.seq
    return cursor, outcomes
