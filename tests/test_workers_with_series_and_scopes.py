"""Workers meet what main gained beside them (issue 15 merged with issues 13 and 17): per-step
metric points (``reportTrainingMetrics(points:)`` and ``(series:)``) are fenced by the lease like
every other write a worker makes, and a key limited to model names claims only its models' jobs
and cannot touch another model's job through the worker mutations. Both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.auth.roles import Role
from graphql_api.domain.api_keys import parse_scope
from graphql_api.storage.mongo import MongoStorage
from tests import operations as ops
from tests.conftest import GraphQLClient
from tests.security_helpers import SECRETS, RoleClient, client, secured_app, snapshot
from tests.test_workers_fencing import claimed_job, new_job, not_the_token

REPORT_SERIES = """
mutation($id: ID!, $token: String, $series: [MetricSeriesInput!]) {
  reportTrainingMetrics(jobId: $id, leaseToken: $token, series: $series) {
    __typename ... on TrainingJob { metrics } ... on Error { code message }
    ... on LeaseLostError { jobId } ... on InvalidTransitionError { currentStatus }
  }
}"""
REPORT_POINTS = """
mutation($id: ID!, $token: String, $points: [MetricPointInput!]) {
  reportTrainingMetrics(jobId: $id, leaseToken: $token, points: $points) {
    __typename ... on TrainingJob { metrics } ... on Error { code message }
    ... on LeaseLostError { jobId } ... on InvalidTransitionError { currentStatus }
  }
}"""
SERIES_READ = """
query($id: ID!) { trainingJob(jobId: $id) {
  metrics metricKeys metricSeries(keys: ["loss", "acc"]) { key totalPoints }
} }"""


def series_form(steps: list[int]) -> tuple[str, dict[str, Any]]:
    values = [1.0 / (s + 1) for s in steps]
    series = [
        {"key": "loss", "steps": steps, "values": values},
        {"key": "acc", "steps": steps, "values": [1 - v for v in values]},
    ]
    return REPORT_SERIES, {"series": series}


def points_form(steps: list[int]) -> tuple[str, dict[str, Any]]:
    points = [{"key": "loss", "step": s, "value": 1.0 / (s + 1)} for s in steps]
    return REPORT_POINTS, {"points": points}


FORMS = {"series": series_form, "points": points_form}


async def report(
    gql: GraphQLClient, form: str, job_id: str, token: str | None, steps: list[int]
) -> dict[str, Any]:
    document, variables = FORMS[form](steps)
    data = await gql.data(document, id=job_id, token=token, **variables)
    result: dict[str, Any] = data["reportTrainingMetrics"]
    return result


@pytest.mark.parametrize("form", list(FORMS))
async def test_metric_points_of_a_claimed_job_need_its_lease_token(
    gql: GraphQLClient, form: str
) -> None:
    job_id, token = await claimed_job(gql)
    _, foreign = await claimed_job(gql)
    empty = (await gql.data(SERIES_READ, id=job_id))["trainingJob"]
    for other in [*not_the_token(token), foreign]:
        refused = await report(gql, form, job_id, other, list(range(0, 50, 5)))
        assert refused["__typename"] == "LeaseLostError", (other, refused)
        assert (refused["code"], refused["jobId"]) == ("LEASE_LOST", job_id)
        assert (await gql.data(SERIES_READ, id=job_id))["trainingJob"] == empty, other

    stored = await report(gql, form, job_id, token, list(range(10)))
    assert stored["__typename"] == "TrainingJob", stored
    assert stored["metrics"]["loss"] == pytest.approx(0.1)
    after = (await gql.data(SERIES_READ, id=job_id))["trainingJob"]
    assert {s["key"]: s["totalPoints"] for s in after["metricSeries"]}["loss"] == 10


@pytest.mark.parametrize("form", list(FORMS))
async def test_points_after_the_lease_ended_are_refused(gql: GraphQLClient, form: str) -> None:
    job_id, token = await claimed_job(gql)
    done = await gql.data(ops.FENCED_COMPLETE, id=job_id, token=token, metrics=None)
    assert done["completeTrainingJob"]["status"] == "COMPLETED"
    late = await report(gql, form, job_id, token, [1, 2])
    assert (late["__typename"], late["currentStatus"]) == ("InvalidTransitionError", "COMPLETED")
    stale = await report(gql, form, job_id, token + "x", [1, 2])
    assert stale["__typename"] == "LeaseLostError"
    assert (await gql.data(SERIES_READ, id=job_id))["trainingJob"]["metricKeys"] == []


@pytest.mark.parametrize("form", list(FORMS))
async def test_points_of_a_job_started_without_a_worker_need_no_token(
    gql: GraphQLClient, form: str
) -> None:
    job_id = await new_job(gql)
    started = (await gql.data(ops.START_LEASED, id=job_id))["startTrainingJob"]
    assert started["workerId"] is None
    assert (await report(gql, form, job_id, None, [3]))["__typename"] == "TrainingJob"
    # A token given is still checked.
    wrong = await report(gql, form, job_id, started["leaseToken"] + "x", [4])
    assert wrong["__typename"] == "LeaseLostError"


# -- keys limited to model names ---------------------------------------------------------------

CREATE_KEY = """mutation($name: String!, $patterns: [String!], $keyRole: ApiKeyRole!) {
  createApiKey(name: $name, role: $keyRole, modelNames: $patterns) {
    ... on CreatedApiKey { secret } ... on Error { code message } } }"""

#: Created in this order (oldest first) in one queue; which a key may claim is its patterns'.
NAMES = ["fraud-a", "churn-eu", "fraud-b", "churn-us", "xchurn", "churn-x"]


class World:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.admin = RoleClient(http)
        self.queue = f"q-{uuid.uuid4().hex[:8]}"
        self.job_of: dict[str, str] = {}

    async def seed(self) -> None:
        for name in NAMES:
            version = {"modelName": name, "version": "1.0.0", "modelType": "CLASSIFICATION"}
            data = await self.admin.data(Role.ADMIN, ops.REGISTER, input=version)
            model_id = data["registerModelVersion"]["modelId"]
            job = {"modelId": model_id, "datasetId": "d", "queue": self.queue}
            data = await self.admin.data(Role.ADMIN, ops.CREATE_JOB, input=job)
            self.job_of[name] = data["createTrainingJob"]["jobId"]

    async def key(self, role: str, *patterns: str) -> str:
        name = f"k{uuid.uuid4().hex[:8]}"
        data = await self.admin.data(
            Role.ADMIN, CREATE_KEY, name=name, patterns=list(patterns), keyRole=role
        )
        secret: str = data["createApiKey"]["secret"]
        return secret

    async def post(self, secret: str, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    async def claim(self, secret: str, worker: str) -> dict[str, Any] | None:
        data = await self.post(secret, ops.CLAIM, queue=self.queue, worker=worker)
        claimed: dict[str, Any] | None = data["claimTrainingJob"]
        return claimed


@pytest.fixture
async def world(storage: MongoStorage) -> AsyncIterator[World]:
    application: Starlette
    async with secured_app(storage) as application, client(application) as http:
        made = World(http)
        await made.seed()
        yield made


@pytest.mark.parametrize(
    ("role", "patterns"),
    [
        ("WORKER", ("churn-*",)),
        ("OPERATOR", ("churn-*",)),
        ("WORKER", ("fraud-?", "xchurn")),
        ("WORKER", ("nothing-*",)),
    ],
)
async def test_a_scoped_key_claims_only_its_models_jobs_oldest_first(
    world: World, role: str, patterns: tuple[str, ...]
) -> None:
    scope = parse_scope(patterns)
    mine = [name for name in NAMES if scope.allows(name)]
    secret = await world.key(role, *patterns)
    claimed = []
    while (job := await world.claim(secret, "w-scoped")) is not None:
        assert job["status"] == "RUNNING" and job["workerId"] == "w-scoped"
        claimed.append(job["jobId"])
    assert claimed == [world.job_of[name] for name in mine]
    # The other models' jobs are still there, PENDING, for an unrestricted worker.
    rest = []
    while (job := await world.claim(secret_of_admin(), "w-all")) is not None:
        rest.append(job["jobId"])
    assert rest == [world.job_of[name] for name in NAMES if name not in mine]


def secret_of_admin() -> str:
    return SECRETS[Role.ADMIN]


async def test_a_scoped_key_cannot_touch_another_models_job_through_worker_mutations(
    world: World, storage: MongoStorage
) -> None:
    admin = secret_of_admin()
    outside = world.job_of["fraud-a"]
    held = await world.claim(admin, "w-admin")  # the oldest: fraud-a
    assert held is not None and held["jobId"] == outside
    token = held["leaseToken"]
    await world.post(admin, ops.CANCEL_GRACEFULLY, id=outside, grace=600)
    secret = await world.key("WORKER", "churn-*")
    before = await snapshot(storage)
    points = series_form([1])[1]
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("heartbeatTrainingJob", ops.HEARTBEAT, {"id": outside, "token": token}),
        ("acknowledgeTrainingJobCancel", ops.ACKNOWLEDGE_CANCEL, {"id": outside, "token": token}),
        ("reportTrainingMetrics", REPORT_SERIES, {"id": outside, "token": token, **points}),
        ("completeTrainingJob", ops.FENCED_COMPLETE, {"id": outside, "token": token}),
        ("failTrainingJob", ops.FENCED_FAIL, {"id": outside, "token": token, "reason": "x"}),
    ]
    for field, document, variables in calls:
        refused = (await world.post(secret, document, **variables))[field]
        assert refused["code"] == "NOT_FOUND", (field, refused)
    assert await snapshot(storage) == before
    # A finished job of another model cannot be retried by it either; its own can.
    acknowledged = await world.post(admin, ops.ACKNOWLEDGE_CANCEL, id=outside, token=token)
    assert acknowledged["acknowledgeTrainingJobCancel"]["status"] == "CANCELLED"
    refused = (await world.post(secret, ops.RETRY, id=outside))["retryTrainingJob"]
    assert refused["code"] == "NOT_FOUND"
    own = await world.claim(secret, "w-scoped")
    assert own is not None and own["jobId"] == world.job_of["churn-eu"]
    beat = await world.post(secret, ops.HEARTBEAT, id=own["jobId"], token=own["leaseToken"])
    assert beat["heartbeatTrainingJob"]["status"] == "RUNNING"
