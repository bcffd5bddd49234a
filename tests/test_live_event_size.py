"""Events carry what changed, not the whole record forever (issue 10, item 7).

50 small metric reports on a job with ~920 KB of hyperparameters grew the change log by 46 MB:
every event copied the record. A job event now leaves out the hyperparameters (they never
change once the job exists); a subscription that shows them reads them from the record, which
is the same value "as of" any event. Everything else an update shows of the job is as of the
event, and relations (the job's model version) are current: docs/subscriptions.md.
"""

from __future__ import annotations

import uuid
from typing import Any

import bson

from graphql_api.services.container import Services
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import create_job_id, mutate, register_id, report
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import eventually
from tests.test_subscriptions import (
    HISTORY,
    SET_LOGS,
    START,
    Live,
    history_of,
    updates,
)

#: ~920 KB, as in the report: 230 strings of 4,000 characters.
BIG = {f"layer_{i}": "w" * 4_000 for i in range(230)}

AS_OF = """subscription($after: String) {
  trainingJobUpdates(after: $after) {
    kind status
    job {
      jobId status metrics logsUrl startedDate hyperparameters
      modelVersion { status }
    }
  }
}"""
PROMOTE = """mutation($id: ID!) {
  promoteModelVersion(modelId: $id) { ... on ModelVersion { status } } }"""


async def stored_event_bytes(storage: MongoStorage, entity_id: str) -> list[int]:
    docs = await storage.database["events"].find({"entity_id": entity_id}).to_list(None)
    return [len(bson.encode(doc)) for doc in docs]


async def test_small_reports_on_a_job_with_big_hyperparameters_add_small_events(
    services: Services, storage: MongoStorage
) -> None:
    version = await services.registry.register(
        model_name="big", version="1.0.0", model_type="regression"
    )
    job = await services.training.create(
        model_id=version.model_id, dataset_id="d", hyperparameters=BIG
    )
    assert len(bson.encode({"h": BIG})) > 900_000
    await services.training.start(job.job_id)
    for step in range(50):
        await services.training.report_metrics(job.job_id, {"loss": 1 / (step + 1), "step": step})
    await services.training.set_logs_url(job.job_id, "s3://logs/big")
    await services.training.complete(job.job_id, {"accuracy": 0.9})

    sizes = await stored_event_bytes(storage, job.job_id)
    assert len(sizes) == 54
    # The whole log of this job is smaller than one copy of its hyperparameters would be.
    assert max(sizes) < 1_024
    assert sum(sizes) < 54 * 1_024
    # The record still has them, unchanged.
    stored = await services.training.get(job.job_id)
    assert stored is not None and stored.hyperparameters == BIG


async def test_updates_show_the_job_as_of_each_event_and_relations_as_of_now(
    live: Live,
) -> None:
    server = await live.start()
    http = live.http(server)
    model_id = await register_id(http)
    hyperparameters = {"lr": 0.01, "layers": [64, 32], "name": f"run-{uuid.uuid4().hex[:6]}"}
    job_id = await create_job_id(http, model_id, hyperparameters=hyperparameters)
    created = history_of(await http.data(HISTORY, id=job_id))[0]["cursor"]
    await mutate(http, START, id=job_id)
    for step in range(3):
        await report(http, job_id, step)
    await mutate(http, SET_LOGS, id=job_id, url="s3://logs/run")
    await report(http, job_id, 3)
    await mutate(http, PROMOTE, id=model_id)  # the version is TESTING from now on

    client = await live.ws(server)
    op = await client.subscribe(AS_OF, after=created)
    got: list[dict[str, Any]] = [u["trainingJobUpdates"] for u in await client.take(op, 6)]
    reported = ["METRICS_REPORTED"] * 3
    assert [u["kind"] for u in got] == ["STARTED", *reported, "LOGS_URL_SET", "METRICS_REPORTED"]
    jobs = [u["job"] for u in got]
    # As of the event: what the job was right after each change.
    assert [j["metrics"].get("step") for j in jobs] == [None, 0, 1, 2, 2, 3]
    assert [j["logsUrl"] for j in jobs] == [None] * 4 + ["s3://logs/run"] * 2
    assert {j["status"] for j in jobs} == {"RUNNING"}
    assert all(j["startedDate"] is not None for j in jobs)
    # Never changes: read from the record, the same for every event.
    assert all(j["hyperparameters"] == hyperparameters for j in jobs)
    # A relation is resolved now: the model version as it is, not as it was.
    assert {j["modelVersion"]["status"] for j in jobs} == {"TESTING"}


async def test_events_recorded_with_the_whole_record_still_read(live: Live) -> None:
    # Events written before this change carry the hyperparameters in their copy.
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http), hyperparameters={"lr": 0.5})
    created = history_of(await http.data(HISTORY, id=job_id))[0]["cursor"]
    storage = live.storage
    assert storage is not None

    async def widen() -> None:
        await storage.database["events"].update_many(
            {"entity_id": job_id}, {"$set": {"snapshot.hyperparameters": {"lr": 0.5}}}
        )

    await live.loop.call(widen())
    await mutate(http, START, id=job_id)
    client = await live.ws(server)
    op = await client.subscribe(AS_OF, after=created)
    (started,) = [u["trainingJobUpdates"] for u in await client.take(op, 1)]
    assert started["job"]["hyperparameters"] == {"lr": 0.5}


async def test_hyperparameters_cost_one_read_per_job_and_only_when_selected(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    model_id = await register_id(http)
    storage = live.storage
    assert storage is not None
    without = """subscription($id: ID) {
      trainingJobUpdates(jobId: $id) { kind job { jobId metrics } } }"""
    with_them = """subscription($id: ID) {
      trainingJobUpdates(jobId: $id) { kind job { jobId metrics hyperparameters } } }"""

    async def round_trips_for(query: str) -> int:
        job_id = await create_job_id(http, model_id, hyperparameters={"lr": 0.1})
        await mutate(http, START, id=job_id)
        clients = [await live.ws(server) for _ in range(4)]
        ops = [await client.subscribe(query, id=job_id) for client in clients]
        await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 4))
        before = storage.stats.round_trips
        for step in range(3):
            await report(http, job_id, step)
        for client, op in zip(clients, ops, strict=True):
            received = updates(await client.take(op, 3))
            if "hyperparameters" in query:
                assert {str(u["job"]["hyperparameters"]) for u in received} == {"{'lr': 0.1}"}
        for client in clients:
            await client.close()
        await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 0))
        return storage.stats.round_trips - before

    # The same reports cost the same, plus one read of the job for 4 subscribers x 3 events.
    assert await round_trips_for(with_them) == await round_trips_for(without) + 1
