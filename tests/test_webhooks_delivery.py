"""The webhook delivery engine against a local receiver (a real socket): every delivery
verifies with the Standard Webhooks reference library, in log order, retried with the same
message id after failures, dead-lettered after the policy's limit (and the next event still
delivered), filters applied; the engine alone (tests/test_webhooks_api.py drives it through the
API)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from graphql_api.domain.events import ChangeKind
from graphql_api.services.container import Services
from graphql_api.storage.mongo import MongoStorage
from graphql_api.webhooks.delivery import Attempt, Outcome, Target, deliver_from
from graphql_api.webhooks.retry import RetryPolicy
from graphql_api.webhooks.signing import new_secret
from tests.webhook_receiver import receiving


async def _job_lifecycle(services: Services, name: str) -> None:
    version = await services.registry.register(
        model_name=name, version="1.0.0", model_type="classification"
    )
    job = await services.training.create(
        model_id=version.model_id, dataset_id="d", job_id=f"{name}-job"
    )
    await services.training.start(job.job_id)
    await services.training.complete(job.job_id, {"acc": 0.9})


async def _run(
    storage: MongoStorage, target: Target, policy: RetryPolicy, script: list[int]
) -> tuple[list[tuple[int, Outcome]], list[Attempt], list[Any], list[float]]:
    attempts: list[Attempt] = []
    pauses: list[float] = []

    async def log(attempt: Attempt) -> None:
        attempts.append(attempt)

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    async def model_name_of(model_id: str) -> str | None:
        version = await storage.model_versions.get(model_id)
        return None if version is None else version.model_name

    async with receiving(script) as receiver, httpx.AsyncClient(timeout=5) as client:

        async def send(url: str, headers: dict[str, str], body: bytes) -> int:
            return (await client.post(url, headers=headers, content=body)).status_code

        target = Target(**{**target.__dict__, "url": receiver.url})
        _, outcomes = await deliver_from(
            target, storage.events, 0, send, policy, log, model_name_of, sleep=pause
        )
        verifier = Webhook(target.secret)
        bodies = [verifier.verify(r.body, r.headers) for r in receiver.received]
    return outcomes, attempts, bodies, pauses


async def test_deliveries_are_signed_and_in_log_order(
    storage: MongoStorage, services: Services
) -> None:
    await _job_lifecycle(services, "churn")
    target = Target("wh1", "", new_secret())
    outcomes, _, bodies, _ = await _run(storage, target, RetryPolicy(), [])
    assert [b["type"] for b in bodies] == [
        "modelVersion.REGISTERED",
        "trainingJob.CREATED",
        "trainingJob.STARTED",
        "trainingJob.COMPLETED",
    ]
    assert all(o is Outcome.DELIVERED for _, o in outcomes)
    assert bodies[-1]["data"]["trainingJob"]["metrics"] == {"acc": 0.9}


async def test_failures_are_retried_with_the_same_message_id_then_delivered(
    storage: MongoStorage, services: Services
) -> None:
    await _job_lifecycle(services, "churn")
    target = Target("wh1", "", new_secret(), kinds=frozenset({ChangeKind.COMPLETED}))
    policy = RetryPolicy(base=1.0, cap=60.0, max_attempts=5)
    outcomes, attempts, bodies, pauses = await _run(storage, target, policy, [500, 503, 200])
    assert [o for _, o in outcomes] == [Outcome.DELIVERED]
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500), (2, 503), (3, 200)]
    assert len({a.message_id for a in attempts}) == 1
    assert len(bodies) == 3 and all(b["type"] == "trainingJob.COMPLETED" for b in bodies)
    assert 0 <= pauses[0] <= 1.0 and 0 <= pauses[1] <= 2.0


@pytest.mark.parametrize("failure", [500, 404, 429])
async def test_a_delivery_failing_past_the_limit_is_dead_lettered_and_the_next_one_goes_out(
    storage: MongoStorage, services: Services, failure: int
) -> None:
    await _job_lifecycle(services, "churn")
    target = Target(
        "wh1", "", new_secret(), kinds=frozenset({ChangeKind.STARTED, ChangeKind.COMPLETED})
    )
    policy = RetryPolicy(max_attempts=3)
    outcomes, attempts, bodies, _ = await _run(storage, target, policy, [failure] * 3)
    assert [o for _, o in outcomes] == [Outcome.DEAD_LETTERED, Outcome.DELIVERED]
    assert [a.status_code for a in attempts] == [failure] * 3 + [200]
    assert [b["type"] for b in bodies][-1] == "trainingJob.COMPLETED"


async def test_filters_leave_other_models_and_statuses_out(
    storage: MongoStorage, services: Services
) -> None:
    await _job_lifecycle(services, "churn")
    await _job_lifecycle(services, "fraud")
    target = Target(
        "wh1",
        "",
        new_secret(),
        model_names=frozenset({"fraud"}),
        job_statuses=frozenset({"COMPLETED", "FAILED"}),
    )
    _, _, bodies, _ = await _run(storage, target, RetryPolicy(), [])
    assert [(b["type"], json.dumps(b["data"]["trainingJob"]["jobId"])) for b in bodies] == [
        ("trainingJob.COMPLETED", '"fraud-job"')
    ]


async def test_no_answer_is_a_failure_with_its_error_logged(
    storage: MongoStorage, services: Services
) -> None:
    await _job_lifecycle(services, "churn")
    attempts: list[Attempt] = []

    async def log(attempt: Attempt) -> None:
        attempts.append(attempt)

    async def no_pause(seconds: float) -> None:
        return None

    async def model_name_of(model_id: str) -> str | None:
        return "churn"

    async with httpx.AsyncClient(timeout=2) as client:

        async def send(url: str, headers: dict[str, str], body: bytes) -> int:
            return (await client.post(url, headers=headers, content=body)).status_code

        # A port nothing listens on (the receiver's, after it closed).
        async with receiving() as receiver:
            url = receiver.url
        target = Target("wh1", url, new_secret(), kinds=frozenset({ChangeKind.COMPLETED}))
        _, outcomes = await deliver_from(
            target,
            storage.events,
            0,
            send,
            RetryPolicy(max_attempts=2),
            log,
            model_name_of,
            sleep=no_pause,
        )
    assert [o for _, o in outcomes] == [Outcome.DEAD_LETTERED]
    assert [(a.status_code, a.error is not None) for a in attempts] == [(None, True), (None, True)]
