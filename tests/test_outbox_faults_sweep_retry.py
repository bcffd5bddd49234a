"""The liveness sweep's automatic retry under the crash test of tests/test_outbox_faults.py
(issue 17 item 1: a stop at every point between the writes of each change): the sweep's
``retry_due`` inserts the next attempt (with its pending CREATED event) and then marks the
failed job RETRIED (two records), and has a recovery path of its own for a run that died
between them (the next attempt exists: only the mark is written). The retry is crashed after
each of its writes; after a restart every change has exactly one event, in order, none is
without its change, and the sweep's next run finishes the retry with one event more."""

from __future__ import annotations

import uuid

import pytest

from graphql_api.services import changes
from graphql_api.services.container import Services
from graphql_api.services.training import ATTEMPT_IDS
from graphql_api.storage.mongo import MongoStorage
from tests.test_outbox_faults import (
    FAIL_PREEMPTED,
    RETRY_POLICY,
    Before,
    InstanceClient,
    Records,
    SweepChange,
    _aliases,
    _check_after_restart,
    _claimed,
    _instance,
    _ok,
    _read,
    _run,
)


async def _retry_due(gql: InstanceClient) -> tuple[Records, str | SweepChange, dict[str, object]]:
    """A job failed PREEMPTED under a retry policy (its retry mark set; the backoff an hour, so
    no instance's own sweep retries it meanwhile); the change: the sweep's retry of it."""
    model_id, job_id, token = await _claimed(gql, retryPolicy=RETRY_POLICY)
    await _ok(gql, FAIL_PREEMPTED, id=job_id, token=token)
    following = str(uuid.uuid5(ATTEMPT_IDS, f"{job_id}#2"))

    async def sweep(services: Services) -> bool:
        job = await services.training.get(job_id)
        assert job is not None
        return await services.training.retry_due(job) is not None

    return Records([model_id], [job_id, following]), sweep, {}


async def test_a_crash_after_any_write_of_the_sweeps_retry_leaves_one_event_per_change(
    storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "FIRST_RETRY_DELAY", 0.0)
    _, writes, acknowledged, _ = await _run(storage, _retry_due, None)
    assert acknowledged and writes >= 2, writes
    for allow in range(writes + 1):
        what = f"the sweep's retry, crash after {allow}"
        records, _, acknowledged, before = await _run(storage, _retry_due, allow)
        assert not acknowledged or allow == writes, allow
        await _check_after_restart(storage, records, before, acknowledged, what)
        # The sweep's next run on the restarted instance finishes what the dead one left
        # (the next attempt made, or only the mark: the recovery path), once.
        job_id, following = records.jobs
        again = Before(
            await _read(storage, records),
            await _aliases(storage, records),
            await storage.events.head(),
        )
        async with _instance(storage, outbox_grace=0, outbox_sweep_interval=0.01) as gql:
            job = await gql.services.training.get(job_id)
            assert job is not None
            if job.retried_by is None:
                await gql.services.training.retry_due(job)
        await _check_after_restart(storage, records, again, False, f"{what}, then a sweep")
        failed = await storage.training_jobs.get(job_id)
        assert failed is not None and failed.retried_by == following, what
        attempt = await storage.training_jobs.get(following)
        assert attempt is not None and attempt.retry_of == job_id, what
