"""Never a change without its event (issue 17, item 1): a change and its event are one write.

For every mutation, the process is stopped after each of the writes it makes (0, 1, 2, ...,
all of them: ``tests/outbox_faults.py``), then a fresh app is started over the same database
(a restart). Once its sweep has run, every record that changed has exactly one event for that
change, the record's events chain in order (each one's previous status is the one before's
status) and the last one shows the record as it is; a change that never landed has no event;
and a mutation that was acknowledged did change its record.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.domain.events import ChangeEvent, ChangeKind
from graphql_api.domain.lifecycle import JOB_TRANSITIONS, VERSION_TRANSITIONS
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import PageRequest
from graphql_api.domain.values import utc_now
from graphql_api.services import changes
from graphql_api.services.changes import IMMUTABLE_FIELDS, INTERNAL_FIELDS
from graphql_api.services.container import Services
from graphql_api.services.training import ATTEMPT_IDS
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


REGISTER_DEPLOYABLE = """mutation($name: String!, $version: String!) {
  registerModelVersion(input: {modelName: $name, version: $version, modelType: CLASSIFICATION,
      artifactUri: "s3://models/m/1", description: "first cut",
      tags: [{key: "team", value: "ml"}]}) {
    __typename ... on ModelVersion { modelId } ... on Error { code message } } }"""
UPDATE_VERSION = """mutation($id: ID!) { updateModelVersion(modelId: $id, description: "better",
  tags: [{key: "k", value: "v"}]) { __typename ... on Error { code message } } }"""
SET_ALIAS = """mutation($name: String!, $id: ID!, $expected: ID) { setModelAlias(modelName: $name,
  alias: "champion", modelId: $id, expectedModelId: $expected) {
  __typename ... on Error { code message } } }"""
DELETE_ALIAS = """mutation($name: String!) { deleteModelAlias(modelName: $name,
  alias: "champion") { __typename ... on Error { code message } } }"""
ROLLBACK = """mutation($name: String!, $id: ID!) { rollbackModelVersion(modelName: $name,
  toModelId: $id, reason: "bad release") { __typename ... on Error { code message } } }"""


@dataclass(frozen=True)
class Records:
    versions: list[str]
    jobs: list[str]
    #: Model names whose ``champion`` alias the mutation may move (its event is about the
    #: version the alias named or names).
    aliases: list[str] = field(default_factory=list)


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


class InstanceClient(GraphQLClient):
    """A client of one instance, with that instance's services: the liveness sweep's changes
    are made by the server itself, not asked for over GraphQL."""

    def __init__(self, http: httpx.AsyncClient, services: Services) -> None:
        super().__init__(http)
        self.services = services


#: A change the server makes by itself (the liveness sweep's), run on an instance: whether it
#: applied. Stands where a scenario's mutation document would.
SweepChange = Callable[[Services], Awaitable[bool]]
Setup = Callable[[InstanceClient], Awaitable[tuple[Records, str | SweepChange, dict[str, Any]]]]


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


async def _register_deployable(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    return Records([], []), REGISTER_DEPLOYABLE, {"name": name, "version": "2.0.0"}


async def _update_version(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    model_id = await _version(gql, f"m-{uuid.uuid4().hex[:8]}", "TESTING")
    return Records([model_id], []), UPDATE_VERSION, {"id": model_id}


async def _rollback(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    old = await _version(gql, name, "PRODUCTION")
    new = (await _ok(gql, REGISTER, name=name, version="1.1.0"))["modelId"]
    await _ok(gql, PROMOTE, id=new, to="TESTING")
    await _ok(gql, PROMOTE, id=new, to="PRODUCTION")  # archives the old one
    return Records([old, new], []), ROLLBACK, {"name": name, "id": old}


async def _set_alias(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    first = await _version(gql, name)
    second = (await _ok(gql, REGISTER, name=name, version="1.1.0"))["modelId"]
    await _ok(gql, SET_ALIAS, name=name, id=first, expected=None)
    return (
        Records([first, second], [], [name]),
        SET_ALIAS,
        {"name": name, "id": second, "expected": first},
    )


async def _delete_alias(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    model_id = await _version(gql, name)
    await _ok(gql, SET_ALIAS, name=name, id=model_id, expected=None)
    return Records([model_id], [], [name]), DELETE_ALIAS, {"name": name}


def _on_job(status: str, mutation: str) -> Setup:
    async def setup(gql: GraphQLClient) -> tuple[Records, str, dict[str, Any]]:
        model_id, job_id = await _job(gql, status)
        return Records([model_id], [job_id]), mutation, {"id": job_id}

    return setup


# Workers (docs/workers.md): every change a worker or the liveness sweep makes carries its
# event in its own write too.
CREATE_IN_QUEUE = """mutation($input: CreateTrainingJobInput!) { createTrainingJob(input: $input) {
  __typename ... on Error { code message } } }"""
CLAIM = """mutation($queue: String!) { claimTrainingJob(queue: $queue, workerId: "w-1",
  leaseSeconds: 60) { __typename ... on TrainingJob { leaseToken }
  ... on Error { code message } } }"""
HEARTBEAT = """mutation($id: ID!, $token: String!) { heartbeatTrainingJob(jobId: $id,
  leaseToken: $token) { __typename ... on Error { code message } } }"""
CANCEL_GRACEFULLY = """mutation($id: ID!) { cancelTrainingJob(jobId: $id, graceSeconds: 600) {
  __typename ... on Error { code message } } }"""
ACKNOWLEDGE = """mutation($id: ID!, $token: String) { acknowledgeTrainingJobCancel(jobId: $id,
  leaseToken: $token) { __typename ... on Error { code message } } }"""
FAIL_PREEMPTED = """mutation($id: ID!, $token: String) { failTrainingJob(jobId: $id,
  leaseToken: $token, reason: "spot instance reclaimed", kind: PREEMPTED, exitCode: 143) {
  __typename ... on Error { code message } } }"""
RETRY = """mutation($id: ID!) { retryTrainingJob(jobId: $id) {
  __typename ... on Error { code message } } }"""
# A long backoff: the restarted instance's sweep must not make the next attempt meanwhile.
RETRY_POLICY = {
    "maxAttempts": 3,
    "retryOn": ["PREEMPTED", "HEARTBEAT_LOST", "TIMED_OUT"],
    "backoffSeconds": 3600,
}


async def _claimed(gql: InstanceClient, **fields: Any) -> tuple[str, str, str]:
    """A job created in a queue of its own and claimed by w-1: its model, id and lease token."""
    model_id = await _version(gql, f"m-{uuid.uuid4().hex[:8]}")
    job_id, queue = f"job-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}"
    job = {"modelId": model_id, "datasetId": "ds", "jobId": job_id, "queue": queue, **fields}
    await _ok(gql, CREATE_IN_QUEUE, input=job)
    claimed = await _ok(gql, CLAIM, queue=queue)
    return model_id, job_id, str(claimed["leaseToken"])


async def _claim(gql: InstanceClient) -> tuple[Records, str | SweepChange, dict[str, Any]]:
    model_id = await _version(gql, f"m-{uuid.uuid4().hex[:8]}")
    job_id, queue = f"job-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}"
    job = {"modelId": model_id, "datasetId": "ds", "jobId": job_id, "queue": queue}
    await _ok(gql, CREATE_IN_QUEUE, input=job)
    return Records([model_id], [job_id]), CLAIM, {"queue": queue}


async def _late(gql: InstanceClient, job_id: str) -> None:
    job = await gql.services.training.get(job_id)
    assert job is not None
    assert await gql.services.training.mark_late(job, utc_now() + timedelta(seconds=120))


async def _recovering_heartbeat(
    gql: InstanceClient,
) -> tuple[Records, str | SweepChange, dict[str, Any]]:
    model_id, job_id, token = await _claimed(gql)
    await _late(gql, job_id)
    return Records([model_id], [job_id]), HEARTBEAT, {"id": job_id, "token": token}


async def _cancel_requested(
    gql: InstanceClient,
) -> tuple[Records, str | SweepChange, dict[str, Any]]:
    model_id, job_id, _ = await _claimed(gql)
    return Records([model_id], [job_id]), CANCEL_GRACEFULLY, {"id": job_id}


async def _acknowledge(gql: InstanceClient) -> tuple[Records, str | SweepChange, dict[str, Any]]:
    model_id, job_id, token = await _claimed(gql)
    await _ok(gql, CANCEL_GRACEFULLY, id=job_id)
    return Records([model_id], [job_id]), ACKNOWLEDGE, {"id": job_id, "token": token}


async def _fail_retried(gql: InstanceClient) -> tuple[Records, str | SweepChange, dict[str, Any]]:
    model_id, job_id, token = await _claimed(gql, retryPolicy=RETRY_POLICY)
    return Records([model_id], [job_id]), FAIL_PREEMPTED, {"id": job_id, "token": token}


async def _retry(gql: InstanceClient) -> tuple[Records, str | SweepChange, dict[str, Any]]:
    model_id, job_id, token = await _claimed(gql)
    await _ok(gql, FAIL_PREEMPTED, id=job_id, token=token)
    following = str(uuid.uuid5(ATTEMPT_IDS, f"{job_id}#2"))
    return Records([model_id], [job_id, following]), RETRY, {"id": job_id}


def _sweep(change: str) -> Setup:
    """A liveness sweep change (``change``: the row's name) on a job set up for it."""

    async def setup(gql: InstanceClient) -> tuple[Records, str | SweepChange, dict[str, Any]]:
        fields: dict[str, Any] = {"retryPolicy": RETRY_POLICY}
        if change == "TIME_OUT":
            fields["maxRuntimeSeconds"] = 1
        model_id, job_id, _ = await _claimed(gql, **fields)
        if change == "LOSE":
            await _late(gql, job_id)
        if change == "FORCE_CANCEL":
            await _ok(gql, CANCEL_GRACEFULLY, id=job_id)
        later = utc_now() + timedelta(days=2)  # past every lease, grace and runtime here

        async def sweep(services: Services) -> bool:
            training = services.training
            job = await training.get(job_id)
            assert job is not None
            if change == "MARK_LATE":
                return await training.mark_late(job, later) is not None
            if change == "LOSE":
                return await training.lose(job, later) is not None
            if change == "TIME_OUT":
                return await training.time_out(job, later) is not None
            return await training.force_cancel(job, later) is not None

        return Records([model_id], [job_id]), sweep, {}

    return setup


SCENARIOS: dict[str, Setup] = {
    "registerModelVersion": _register,
    "promoteModelVersion(TESTING)": _promote,
    "promoteModelVersion(PRODUCTION) over a production version": _deploy_over,
    "archiveModelVersion(production)": _archive_production,
    "updateModelVersionMetrics": _version_metrics,
    "registerModelVersion with artifact, description and tags": _register_deployable,
    "updateModelVersion": _update_version,
    "rollbackModelVersion": _rollback,
    "setModelAlias (moving it)": _set_alias,
    "deleteModelAlias": _delete_alias,
    "createTrainingJob": _create_job,
    "startTrainingJob": _on_job("PENDING", START),
    "reportTrainingMetrics": _on_job("RUNNING", REPORT),
    "completeTrainingJob": _on_job("RUNNING", COMPLETE),
    "failTrainingJob": _on_job("RUNNING", FAIL),
    "cancelTrainingJob": _on_job("RUNNING", CANCEL),
    "setTrainingJobLogsUrl": _on_job("RUNNING", LOGS),
    "claimTrainingJob": _claim,
    "heartbeatTrainingJob (a LATE job recovers)": _recovering_heartbeat,
    "cancelTrainingJob(graceSeconds) of a RUNNING job": _cancel_requested,
    "acknowledgeTrainingJobCancel": _acknowledge,
    "failTrainingJob with a retry policy (the retry's mark in the same write)": _fail_retried,
    "retryTrainingJob": _retry,
    "MARK_LATE (liveness sweep)": _sweep("MARK_LATE"),
    "LOSE (liveness sweep: HEARTBEAT_LOST, retry mark)": _sweep("LOSE"),
    "TIME_OUT (liveness sweep: TIMED_OUT, retry mark)": _sweep("TIME_OUT"),
    "FORCE_CANCEL (liveness sweep)": _sweep("FORCE_CANCEL"),
}


@asynccontextmanager
async def _instance(storage: Storage, **settings: Any) -> AsyncIterator[InstanceClient]:
    application = create_app(Settings(allowed_hosts=["testserver"], **settings), storage=storage)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield InstanceClient(http, application.state.services)


Record = ModelVersion | TrainingJob
ALIAS_KINDS = frozenset({ChangeKind.ALIAS_SET, ChangeKind.ALIAS_DELETED})


async def _read(storage: MongoStorage, records: Records) -> dict[str, Record | None]:
    found: dict[str, Record | None] = {}
    for model_id in records.versions:
        found[model_id] = await storage.model_versions.get(model_id)
    for job_id in records.jobs:
        found[job_id] = await storage.training_jobs.get(job_id)
    return found


async def _aliases(storage: MongoStorage, records: Records) -> dict[str, dict[str, str]]:
    return await storage.model_versions.aliases_of(records.aliases)


def _alias_events_expected(
    before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]
) -> dict[str, int]:
    """Per version id: the alias events the moves between ``before`` and ``after`` owe it (an
    alias set is about the version it names now, a deletion about the one it named)."""
    owed: dict[str, int] = {}
    for name, was in before.items():
        now = after.get(name, {})
        for alias in set(was) | set(now):
            if was.get(alias) == now.get(alias):
                continue
            about = now.get(alias) or was[alias]
            owed[about] = owed.get(about, 0) + 1
    return owed


def _as_of(event: ChangeEvent, record: Record) -> dict[str, Any]:
    """The event's copy of the record, read as the record's model (immutable fields, which
    events leave out, taken from the record; so are the internal ones, a lease's hash)."""
    kept = record.model_dump(mode="python", include=IMMUTABLE_FIELDS | INTERNAL_FIELDS)
    return type(record).model_validate({**event.snapshot, **kept}).model_dump(mode="json")


@dataclass(frozen=True)
class Before:
    records: dict[str, Record | None]
    aliases: dict[str, dict[str, str]]
    head: int


async def _run(
    storage: MongoStorage, setup: Setup, allow: int | None
) -> tuple[Records, int, bool, Before]:
    """Set up, then run the mutation in an instance that dies after ``allow`` writes (None:
    never); the records, the writes made, whether the mutation was acknowledged, the
    records before it and the log's head then."""
    crash = Crash()
    # This instance's own sweep never relays (its grace is an hour): what it leaves pending is
    # for the restarted instance to find.
    async with _instance(CrashingStorage(storage, crash), outbox_grace=3600) as gql:
        records, mutation, variables = await setup(gql)
        before = Before(
            await _read(storage, records),
            await _aliases(storage, records),
            await storage.events.head(),
        )
        crash.arm(allow)
        if callable(mutation):
            try:
                applied = await mutation(gql.services)
                body: dict[str, Any] = {"data": {"sweep": {} if applied else {"code": "NONE"}}}
            except Exception as error:  # the instance died under it
                body = {"errors": [{"message": repr(error)}]}
        else:
            body = await gql.execute(mutation, **variables)
        writes = crash.writes
    # Dead through its shutdown too (a killed process does not clear the events it relayed).
    crash.arm(None)
    acknowledged = "errors" not in body and all(
        "code" not in result for result in body["data"].values()
    )
    if mutation in (REGISTER, REGISTER_DEPLOYABLE):  # the id is the server's
        page = await storage.model_versions.latest(variables["name"])
        records = Records([] if page is None else [page.model_id], [])
    return records, writes, acknowledged, before


async def _check_after_restart(
    storage: MongoStorage,
    records: Records,
    before: Before,
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
        for name in records.aliases:
            if await storage.model_versions.alias_pending_change(name) is not None:
                return False
        return True

    async with _instance(storage, outbox_grace=0, outbox_sweep_interval=0.01):
        await wait_for(nothing_pending, f"the restarted instance's sweep ({what})")
    after = await _read(storage, records)
    owed = _alias_events_expected(before.aliases, await _aliases(storage, records))
    changed = sum(owed.values())
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
        was = before.records.get(record_id)
        did_change = was is None or was.model_dump(mode="json") != record.model_dump(mode="json")
        new = [e for e in events if e.seq > before.head]
        aliased = [e for e in new if e.kind in ALIAS_KINDS]
        assert len(aliased) == owed.get(record_id, 0), f"{what}: {record_id} {new}"
        assert len(new) - len(aliased) == (1 if did_change else 0), f"{what}: {record_id} {new}"
        changed += did_change
    if acknowledged:
        assert changed, f"{what}: acknowledged, but no record changed"
    # A registered version's name is in the list of models (``models``), even when the
    # registration's writer died between its insert and listing the name.
    listed = await storage.model_versions.model_names(None, PageRequest(first=100))
    for record in after.values():
        if isinstance(record, ModelVersion):
            assert record.model_name in listed.items, f"{what}: {record.model_name} not listed"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_a_crash_after_any_write_leaves_every_change_with_exactly_one_event(
    storage: MongoStorage, scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dead process's appends fail at once; their retries need no pause here.
    monkeypatch.setattr(changes, "FIRST_RETRY_DELAY", 0.0)
    setup = SCENARIOS[scenario]
    _, writes, acknowledged, _ = await _run(storage, setup, None)
    assert acknowledged and writes >= 2, (scenario, writes)
    for allow in range(writes + 1):
        records, _, acknowledged, before = await _run(storage, setup, allow)
        # A process that died before its last write answered nothing.
        assert not acknowledged or allow == writes, (scenario, allow)
        await _check_after_restart(
            storage, records, before, acknowledged, f"{scenario}, crash after {allow}"
        )


def test_every_mutation_that_records_an_event_has_a_crash_scenario() -> None:
    """A new row of the lifecycle table (a new mutation with an event) needs a scenario here,
    so that no change can bypass the outbox unnoticed."""
    covered = {name.split(" ")[0].split("(")[0] for name in SCENARIOS}
    # Rows without a mutation are the liveness sweep's (scenarios below name them by row).
    mutations = {row.mutation or row.name for row in JOB_TRANSITIONS} | {
        row.mutation or row.name for row in VERSION_TRANSITIONS
    }
    assert mutations <= covered, sorted(mutations - covered)


def test_no_service_appends_an_event_outside_the_outbox() -> None:
    """The only code that appends to the change log is the outbox's relay: a service writing
    a record and then appending its event separately (the crash window the outbox closes)
    fails here."""
    import inspect
    import pkgutil

    import graphql_api.services as services

    appenders = []
    for module_info in pkgutil.iter_modules(services.__path__):
        module = importlib.import_module(f"graphql_api.services.{module_info.name}")
        source = inspect.getsource(module)
        if "ChangeRecorder(" in source or "events.append(" in source:
            appenders.append(module_info.name)
    assert sorted(appenders) == ["changes", "outbox"], appenders
