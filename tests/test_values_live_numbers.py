"""Metric numbers keep their JSON type on the live stream too (issue 10, item 13): the update a
subscriber receives shows ``epoch: 4`` as 4, like the mutation and the query."""

from __future__ import annotations

from tests.api_helpers import create_job_id, mutate, register_id
from tests.live_servers import eventually

# The subscription harness (a real uvicorn server per test, both backends) and its fixtures.
from tests.test_subscriptions import (  # noqa: F401  (fixtures are used by name)
    JOB_UPDATES,
    START,
    Live,
    live,
)

REPORT = """mutation($id: ID!, $metrics: JSON!) {
  reportTrainingMetrics(jobId: $id, metrics: $metrics) { ... on TrainingJob { metrics } }
}"""


async def test_a_subscriber_sees_integer_metrics_as_integers(
    live: Live,  # noqa: F811  (the imported fixture, requested by name)
) -> None:
    server = await live.start()
    http = live.http(server)
    client = await live.ws(server)
    model_id = await register_id(http)
    job_id = await create_job_id(http, model_id)
    await mutate(http, START, id=job_id)
    op = await client.subscribe(JOB_UPDATES, jobId=job_id)
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 1))

    sent = {"epoch": 4, "loss": 0.31, "whole": 4.0}
    await mutate(http, REPORT, id=job_id, metrics=sent)

    update = (await client.next(op))["trainingJobUpdates"]
    assert update["kind"] == "METRICS_REPORTED"
    metrics = update["job"]["metrics"]
    assert metrics == sent
    assert [type(metrics[k]) for k in sent] == [int, float, float]
