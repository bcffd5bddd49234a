"""Subscribers that share an execution do not each copy graphql-core's executor for the event
(issue 12 item 6: per-subscriber CPU of a delivery).

graphql-core copies a subscription's executor for every event (``build_per_event_executor``)
and executes the copy; with the result shared, the copies of all subscribers but the one that
executes were built for nothing (~7% of a delivery's CPU, bench/README.md). Counted over real
WebSockets: one copy per event and distinct operation, whatever the number of subscribers, and
every subscriber still gets the whole result.
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql.execution.executor import Executor

from tests.api_helpers import mutate, report
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.test_live_fanout import all_receive, watched_job
from tests.test_subscriptions import START, Live


@pytest.mark.parametrize("count", [2, 5])
async def test_one_executor_copy_per_event_and_operation(
    live: Live, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    copies: list[object] = []
    original = Executor.build_per_event_executor

    def counted(self: Executor[Any], payload: Any) -> Executor[Any]:
        copies.append(payload)
        return original(self, payload)

    monkeypatch.setattr(Executor, "build_per_event_executor", counted)
    _, http, job_id, full, slim = await watched_job(live, count)
    copies.clear()

    await mutate(http, START, id=job_id)
    await report(http, job_id, 7)

    got = await all_receive(full, 2)
    assert [u["trainingJobUpdates"]["kind"] for u in got] == ["STARTED", "METRICS_REPORTED"]
    assert got[1]["trainingJobUpdates"]["job"]["metrics"] == {"step": 7}
    statuses = await all_receive(slim, 2)
    assert [u["trainingJobUpdates"]["status"] for u in statuses] == ["RUNNING", "RUNNING"]
    # Two events, two operations: four copies, not 2 x 2 x count.
    assert len(copies) == 4
