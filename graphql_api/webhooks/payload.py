"""What a webhook delivery carries: one change of the change log, as JSON.

The body is the Standard Webhooks envelope::

    {"type": "trainingJob.COMPLETED", "timestamp": "2026-12-01T15:40:00.123000Z",
     "data": {"cursor": "...", "kind": "COMPLETED", "previousStatus": "RUNNING",
              "status": "COMPLETED", "occurredAt": "...", "actor": "ci",
              "trainingJob": {"jobId": "...", "modelId": "...", "status": "COMPLETED", ...}}}

``data`` has the fields of a subscription's update (docs/subscriptions.md): the change's
header, and the record as it was right after the change (``trainingJob`` or
``modelVersion``, camelCase, statuses as the API spells them). ``cursor`` is the change log
cursor of the event, which ``replayWebhook(after:)`` and the subscriptions' ``after`` take.
The message id (``webhook-id``) is the webhook's id and the event's sequence number: the same
on every retry and redelivery of one event to one webhook.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.live import cursor

#: The envelope's ``type`` prefix and ``data`` key of each kind of record.
_RECORD = {EntityKind.TRAINING_JOB: "trainingJob", EntityKind.MODEL_VERSION: "modelVersion"}


def message_id(webhook_id: str, seq: int) -> str:
    return f"msg_{webhook_id}_{seq}"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _status(value: Any) -> Any:
    # Model version statuses and model types are stored lowercase; the API's enums spell them
    # in capitals (the other enums are stored as the API spells them).
    return value.upper() if isinstance(value, str) else value


#: The record's fields whose stored values are the lowercase spelling of an API enum.
_LOWERCASE_ENUMS = frozenset({"status", "model_type"})


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if hasattr(value, "value"):  # an enum
        return value.value
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _field_value(name: str, value: Any) -> Any:
    """A record field's value as the API spells it."""
    plain = _json_value(value)
    return _status(plain) if name in _LOWERCASE_ENUMS else plain


def payload(event: ChangeEvent) -> dict[str, Any]:
    record = {_camel(name): _field_value(name, value) for name, value in event.snapshot.items()}
    key = _RECORD[event.entity]
    return {
        "type": f"{key}.{event.kind.value}",
        "timestamp": _json_value(event.occurred_at),
        "data": {
            "cursor": cursor.encode(event.seq),
            "kind": event.kind.value,
            "previousStatus": _status(event.previous_status),
            "status": _status(event.status),
            "occurredAt": _json_value(event.occurred_at),
            "actor": event.actor,
            key: record,
        },
    }


def body(event: ChangeEvent) -> bytes:
    """The delivery's bytes (compact JSON, UTF-8): what the signature covers."""
    return json.dumps(payload(event), separators=(",", ":"), ensure_ascii=False).encode()


def matches(
    event: ChangeEvent,
    *,
    kinds: Collection[ChangeKind],
    model_names: Collection[str],
    job_statuses: Collection[str],
    model_name: str | None,
) -> bool:
    """Whether a webhook with these filters (empty: any) gets ``event``. ``model_name`` is the
    event's model name (a job event's is its model version's, which the caller looks up).
    ``job_statuses`` is about the job after the change, as in ``trainingJobUpdates``; it
    leaves model version events out."""
    if kinds and event.kind not in kinds:
        return False
    if model_names and model_name not in model_names:
        return False
    if job_statuses:
        return event.entity is EntityKind.TRAINING_JOB and event.status in job_statuses
    return True
