"""Never a change without its event (issue 17, item 1): a change and its event are one write.

For every mutation, the process is stopped after each of the writes it makes (0, 1, 2, ...,
all of them: ``tests/outbox_faults.py``), then a fresh app is started over the same database
(a restart). Once its sweep has run, every record that changed has exactly one event for that
change, the record's events chain in order (each one's previous status is the one before's
status) and the last one shows the record as it is; a change that never landed has no event;
and a mutation that was acknowledged did change its record.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.domain.events import ChangeEvent, ChangeKind
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.services import changes
from graphql_api.services.changes import IMMUTABLE_FIELDS
from graphql_api.settings import Settings
from graphql_api.storage.base import Storage
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.outbox_faults import Crash, CrashingStorage, wait_for

REGISTER = """mutation($name: String!, $version: String!) {
  registerModelVersion(input: {modelName: $name, version: $version, modelType: CLASSIFICATION,
                               metrics: {auc: 0.5}}) {
    __typename ... on ModelVersion { modelId } ... on Error { code message } } }"""
PROMOTE = """mutation($id: ID!, $to: ModelStatus) { promoteModelVersion(modelId: $id, to: $to) {
  __typename ... on Error { code message } } }"""
ARCHIVE = """mutation($id: ID!) { archiveModelVersion(modelId: $id) {
  __typename ... on Error { code message } } }"""
VERSION_METRICS = """mutation($id: ID!) { updateModelVersionMetrics(modelId: $id,
  metrics: {f1: 0.7}) { __typename ... on Error { code message } } }"""
CREATE_JOB = """mutation($modelId: ID!, $jobId: ID!) { createTrainingJob(input: {modelId: $modelId,
  datasetId: "ds", jobId: $jobId, hyperparameters: {lr: 0.1}}) {
  __typename ... on Error { code message } } }"""
START = """mutation($id: ID!) { startTrainingJob(jobId: $id) {
  __typename ... on Error { code message } } }"""
REPORT = """mutation($id: ID!) { reportTrainingMetrics(jobId: $id, metrics: {loss: 0.25}) {
  __typename ... on Error { code message } } }"""
COMPLETE = """mutation($id: ID!) { completeTrainingJob(jobId: $id, metrics: {acc: 0.9}) {
  __typename ... on Error { code message } } }"""
FAIL = """mutation($id: ID!) { failTrainingJob(jobId: $id, reason: "oom") {
  __typename ... on Error { code message } } }"""
CANCEL = """mutation($id: ID!) { cancelTrainingJob(jobId: $id) {
  __typename ... on Error { code message } } }"""
LOGS = """mutation($id: ID!) { setTrainingJobLogsUrl(jobId: $id, logsUrl: "s3://logs/x") {
  __typename ... on Error { code message } } }"""


@dataclass(frozen=True)
class Records:
    versions: list[str]
    jobs: list[str]


async def _ok(gql: GraphQLClient, query: str, **variables: Any) -> dict[str, Any]:
    data = await gql.data(query, **variables)
    (result,) = data.values()
    assert "code" not in result, result
    return dict(result)


async def _version(gql: GraphQLClient, name: str, stage: str = "DEVELOPMENT") -> str:
    model_id = (await _ok(gql, REGISTER, name=name, version="1.0.0"))["modelId"]
    for to in ("TESTING", "PRODUCTION"):
        if stage == "DEVELOPMENT" or (stage == "TESTING" and to == "PRODUCTION"):
            break
        await _ok(gql, PROMOTE, id=model_id, to=to)
    return str(model_id)


async def _job(gql: GraphQLClient, status: str = "PENDING") -> tuple[str, str]:
    model_id = await _version(gql, f"m-{uuid.uuid4().hex[:8]}")
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    await _ok(gql, CREATE_JOB, modelId=model_id, jobId=job_id)
    if status == "RUNNING":
        await _ok(gql, START, id=job_id)
    return model_id, job_id


Setup = Callable[[GraphQLClient], Awaitable[tuple[Records, str, dict[str, Any]]]]


async def _register(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    # The id is the server's: found after the mutation by name (see _records_after).
    return Records([], []), REGISTER, {"name": name, "version": "2.0.0"}


async def _promote(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    model_id = await _version(gql, f"m-{uuid.uuid4().hex[:8]}")
    return Records([model_id], []), PROMOTE, {"id": model_id, "to": "TESTING"}


async def _deploy_over(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    old = await _version(gql, name, "PRODUCTION")
    new = (await _ok(gql, REGISTER, name=name, version="1.1.0"))["modelId"]
    await _ok(gql, PROMOTE, id=new, to="TESTING")
    return Records([old, new], []), PROMOTE, {"id": new, "to": "PRODUCTION"}


async def _archive_production(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    model_id = await _version(gql, f"m-{uuid.uuid4().hex[:8]}", "PRODUCTION")
    return Records([model_id], []), ARCHIVE, {"id": model_id}


async def _version_metrics(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    model_id = await _version(gql, f"m-{uuid.uuid4().hex[:8]}", "TESTING")
    return Records([model_id], []), VERSION_METRICS, {"id": model_id}


async def _create_job(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    model_id = await _version(gql, f"m-{uuid.uuid4().hex[:8]}")
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    return Records([model_id], [job_id]), CREATE_JOB, {"modelId": model_id, "jobId": job_id}


def _on_job(status: str, mutation: str) -> Setup:
    async def setup(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
        model_id, job_id = await _job(gql, status)
        return Records([model_id], [job_id]), mutation, {"id": job_id}

    return setup


SCENARIOS: dict[str, Setup] = {
    "registerModelVersion": _register,
    "promoteModelVersion(TESTING)": _promote,
    "promoteModelVersion(PRODUCTION) over a production version": _deploy_over,
    "archiveModelVersion(production)": _archive_production,
    "updateModelVersionMetrics": _version_metrics,
    "createTrainingJob": _create_job,
    "startTrainingJob": _on_job("PENDING", START),
    "reportTrainingMetrics": _on_job("RUNNING", REPORT),
    "completeTrainingJob": _on_job("RUNNING", COMPLETE),
    "failTrainingJob": _on_job("RUNNING", FAIL),
    "cancelTrainingJob": _on_job("RUNNING", CANCEL),
    "setTrainingJobLogsUrl": _on_job("RUNNING", LOGS),
}


@asynccontextmanager
async def _instance(storage: Storage, **settings: Any) -> AsyncIterator[GraphQLClient]:
    application = create_app(Settings(allowed_hosts=["testserver"], **settings), storage=storage)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield GraphQLClient(http)


Record = ModelVersion | TrainingJob


async def _read(storage: MongoStorage, records: Records) -> dict[str, Record | None]:
    found: dict[str, Record | None] = {}
    for model_id in records.versions:
        found[model_id] = await storage.model_versions.get(model_id)
    for job_id in records.jobs:
        found[job_id] = await storage.training_jobs.get(job_id)
    return found


def _as_of(event: ChangeEvent, record: Record) -> dict[str, Any]:
    """The event's copy of the record, read as the record's model (immutable fields, which
    events leave out, taken from the record)."""
    kept = record.model_dump(mode="python", include=IMMUTABLE_FIELDS)
    return type(record).model_validate({**event.snapshot, **kept}).model_dump(mode="json")


async def _run(
    storage: MongoStorage, setup: Setup, allow: int | None
) -> tuple[Records, int, bool, dict[str, Record | None], int]:
    """Set up, then run the mutation in an instance that dies after ``allow`` writes (None:
    never); the records, the writes made, whether the mutation was acknowledged, the
    records before it and the log's head then."""
    crash = Crash()
    # This instance's own sweep never relays (its grace is an hour): what it leaves pending is
    # for the restarted instance to find.
    async with _instance(CrashingStorage(storage, crash), outbox_grace=3600) as gql:
        records, mutation, variables = await setup(gql)
        before = await _read(storage, records)
        head = await storage.events.head()
        crash.arm(allow)
        body = await gql.execute(mutation, **variables)
        writes = crash.writes
        crash.arm(None)
    acknowledged = "errors" not in body and all(
        "code" not in result for result in body["data"].values()
    )
    if "name" in variables:  # registerModelVersion: the id is the server's
        page = await storage.model_versions.latest(variables["name"])
        records = Records([] if page is None else [page.model_id], [])
    return records, writes, acknowledged, before, head


async def _check_after_restart(
    storage: MongoStorage,
    records: Records,
    before: dict[str, Record | None],
    head_before: int,
    acknowledged: bool,
    what: str,
) -> None:
    async def nothing_pending() -> bool:
        for model_id in records.versions:
            if await storage.model_versions.pending_change(model_id) is not None:
                return False
        for job_id in records.jobs:
            if await storage.training_jobs.pending_change(job_id) is not None:
                return False
        return True

    async with _instance(storage, outbox_grace=0, outbox_sweep_interval=0.01):
        await wait_for(nothing_pending, f"the restarted instance's sweep ({what})")
    after = await _read(storage, records)
    changed = 0
    for record_id, record in after.items():
        events = await storage.events.for_entity(record_id, 1000)
        if record is None:
            assert events == [], f"{what}: events without their record {record_id}"
            continue
        assert events, f"{what}: {record_id} has no event at all"
        assert events[0].kind in (ChangeKind.CREATED, ChangeKind.REGISTERED), what
        assert events[0].previous_status is None, what
        for earlier, later in pairwise(events):
            assert later.seq > earlier.seq, what
            assert later.previous_status == earlier.status, f"{what}: {events}"
        assert events[-1].status == record.status.value, f"{what}: {events[-1]} vs {record}"
        assert _as_of(events[-1], record) == record.model_dump(mode="json"), what
        was = before.get(record_id)
        did_change = was is None or was.model_dump(mode="json") != record.model_dump(mode="json")
        new = [e for e in events if e.seq > head_before]
        assert len(new) == (1 if did_change else 0), f"{what}: {record_id} {new}"
        changed += did_change
    if acknowledged:
        assert changed, f"{what}: acknowledged, but no record changed"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_a_crash_after_any_write_leaves_every_change_with_exactly_one_event(
    storage: MongoStorage, scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dead process's appends fail at once; their retries need no pause here.
    monkeypatch.setattr(changes, "FIRST_RETRY_DELAY", 0.0)
    setup = SCENARIOS[scenario]
    _, writes, acknowledged, _, _ = await _run(storage, setup, None)
    assert acknowledged and writes >= 2, (scenario, writes)
    for allow in range(writes + 1):
        records, _, acknowledged, before, head = await _run(storage, setup, allow)
        # A process that died before its last write answered nothing.
        assert not acknowledged or allow == writes, (scenario, allow)
        await _check_after_restart(
            storage, records, before, head, acknowledged, f"{scenario}, crash after {allow}"
        )
