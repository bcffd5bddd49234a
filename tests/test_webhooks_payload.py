"""What a webhook delivery carries (the payload of a change, signed) and when a failed one is
tried again (docs/webhooks.md, payloads and delivery)."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from graphql_api.domain.enums import ModelType
from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.live import cursor
from graphql_api.webhooks.payload import body, matches, message_id, payload
from graphql_api.webhooks.retry import RetryPolicy
from graphql_api.webhooks.signing import headers, new_secret

AT = datetime(2026, 12, 1, 15, 40, 0, 123000, tzinfo=UTC)

JOB_COMPLETED = ChangeEvent(
    seq=42,
    entity=EntityKind.TRAINING_JOB,
    entity_id="job-1",
    kind=ChangeKind.COMPLETED,
    previous_status="RUNNING",
    status="COMPLETED",
    occurred_at=AT,
    model_id="m-1",
    actor="ci",
    snapshot={
        "job_id": "job-1",
        "model_id": "m-1",
        "status": "COMPLETED",
        "dataset_id": "ds",
        "started_date": AT,
        "completed_date": AT,
        "metrics": {"acc": 0.9},
        "logs_url": None,
        "created_date": AT,
        "failure_reason": None,
    },
)
VERSION_DEPLOYED = ChangeEvent(
    seq=43,
    entity=EntityKind.MODEL_VERSION,
    entity_id="m-2",
    kind=ChangeKind.DEPLOYED,
    previous_status="testing",
    status="production",
    occurred_at=AT,
    model_id="m-2",
    model_name="churn",
    snapshot={"model_id": "m-2", "model_name": "churn", "status": "production",
              "model_type": "regression"},
)  # fmt: skip


def test_a_job_change_is_the_subscription_update_in_a_standard_envelope() -> None:
    assert payload(JOB_COMPLETED) == {
        "type": "trainingJob.COMPLETED",
        "timestamp": "2026-12-01T15:40:00.123000Z",
        "data": {
            "cursor": cursor.encode(42),
            "kind": "COMPLETED",
            "previousStatus": "RUNNING",
            "status": "COMPLETED",
            "occurredAt": "2026-12-01T15:40:00.123000Z",
            "actor": "ci",
            "trainingJob": {
                "jobId": "job-1",
                "modelId": "m-1",
                "status": "COMPLETED",
                "datasetId": "ds",
                "startedDate": "2026-12-01T15:40:00.123000Z",
                "completedDate": "2026-12-01T15:40:00.123000Z",
                "metrics": {"acc": 0.9},
                "logsUrl": None,
                "createdDate": "2026-12-01T15:40:00.123000Z",
                "failureReason": None,
            },
        },
    }


def test_a_version_change_spells_statuses_and_model_types_as_the_api_does() -> None:
    data = payload(VERSION_DEPLOYED)["data"]
    assert (data["previousStatus"], data["status"]) == ("TESTING", "PRODUCTION")
    # The model type too, as stored (lowercase) and as a live snapshot holds it (the enum).
    assert data["modelVersion"] == {
        "modelId": "m-2", "modelName": "churn", "status": "PRODUCTION", "modelType": "REGRESSION"
    }  # fmt: skip
    snapshot = {**VERSION_DEPLOYED.snapshot, "model_type": ModelType.REGRESSION}
    live = VERSION_DEPLOYED.model_copy(update={"snapshot": snapshot})
    assert payload(live)["data"]["modelVersion"]["modelType"] == "REGRESSION"


def test_the_signed_body_verifies_and_parses_back_to_the_payload() -> None:
    secret = new_secret()
    raw = body(JOB_COMPLETED)
    sent = headers(secret, message_id("wh1", JOB_COMPLETED.seq), int(time.time()), raw)
    assert Webhook(secret).verify(raw, sent) == json.loads(json.dumps(payload(JOB_COMPLETED)))


@pytest.mark.parametrize(
    ("event", "filters", "model_name", "expected"),
    [
        (JOB_COMPLETED, {}, "churn", True),
        (JOB_COMPLETED, {"kinds": [ChangeKind.COMPLETED]}, "churn", True),
        (JOB_COMPLETED, {"kinds": [ChangeKind.STARTED]}, "churn", False),
        (JOB_COMPLETED, {"model_names": ["churn"]}, "churn", True),
        (JOB_COMPLETED, {"model_names": ["fraud"]}, "churn", False),
        (JOB_COMPLETED, {"job_statuses": ["COMPLETED", "FAILED"]}, "churn", True),
        (JOB_COMPLETED, {"job_statuses": ["RUNNING"]}, "churn", False),
        (VERSION_DEPLOYED, {"job_statuses": ["COMPLETED"]}, "churn", False),
        (
            VERSION_DEPLOYED,
            {"kinds": [ChangeKind.DEPLOYED], "model_names": ["churn"]},
            "churn",
            True,
        ),
    ],
)
def test_filters_all_must_match(
    event: ChangeEvent, filters: dict[str, list[str]], model_name: str, expected: bool
) -> None:
    given: dict[str, list[str]] = {"kinds": [], "model_names": [], "job_statuses": []}
    given.update(filters)
    kinds = [ChangeKind(k) for k in given["kinds"]]
    assert (
        matches(
            event,
            kinds=kinds,
            model_names=given["model_names"],
            job_statuses=given["job_statuses"],
            model_name=model_name,
        )
        is expected
    )


def test_retries_back_off_exponentially_with_full_jitter_then_dead_letter() -> None:
    policy = RetryPolicy(base=1.0, cap=30.0, max_attempts=6)
    rng = random.Random(7)
    for failed, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0)]:
        delays = [policy.delay(failed, rng) for _ in range(200)]
        assert all(d is not None and 0 <= d <= ceiling for d in delays)
        assert max(d for d in delays if d is not None) > ceiling / 2  # spread, not fixed
    assert policy.delay(6, rng) is None
    assert RetryPolicy(base=1.0, cap=30.0, max_attempts=20).delay(10, rng) is not None
    assert all(
        (RetryPolicy(cap=30.0, max_attempts=99).delay(12, rng) or 0) <= 30 for _ in range(50)
    )
