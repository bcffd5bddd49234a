"""What the metric series tests share: the operations a training script and a dashboard send,
and a running job to send them to."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import CREATE_JOB, ERROR_FIELDS, JOB_FIELDS, REGISTER, START

REPORT_POINTS = f"""
mutation($id: ID!, $points: [MetricPointInput!]) {{
  reportTrainingMetrics(jobId: $id, points: $points) {{
    ... on TrainingJob {{ {JOB_FIELDS} }} {ERROR_FIELDS}
  }}
}}"""

SERIES = """
query($id: ID!, $keys: [String!], $from: Int64, $to: Int64, $max: Int! = 500,
      $sampling: MetricSampling! = MIN_MAX) {
  trainingJob(jobId: $id) {
    metricKeys
    metricSeries(keys: $keys, fromStep: $from, toStep: $to, maxPoints: $max,
                 sampling: $sampling) {
      key totalPoints sampled firstStep lastStep min max last
      points { step value timestamp }
    }
  }
}"""


def points(key: str, steps: range | list[int], value: Any = None) -> list[dict[str, Any]]:
    """Points of ``key`` at ``steps``; values ``step / 10`` unless given (a callable of the
    step, or one number)."""
    made = []
    for step in steps:
        v = step / 10 if value is None else value(step) if callable(value) else value
        made.append({"key": key, "step": step, "value": v})
    return made


async def running_job(gql: GraphQLClient, name: str | None = None) -> str:
    """A RUNNING job (of a new model name unless ``name`` is given)."""
    name = name or f"series-{uuid.uuid4().hex[:8]}"
    model = (
        await gql.data(
            REGISTER,
            input={"modelName": name, "version": "1.0.0", "modelType": "REGRESSION"},
        )
    )["registerModelVersion"]
    job = (await gql.data(CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "d"}))[
        "createTrainingJob"
    ]
    started = (await gql.data(START, id=job["jobId"]))["startTrainingJob"]
    assert started["status"] == "RUNNING", started
    return str(job["jobId"])


async def report(gql: GraphQLClient, job_id: str, sent: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(REPORT_POINTS, id=job_id, points=sent))[
        "reportTrainingMetrics"
    ]
    return result


async def read(gql: GraphQLClient, job_id: str, **arguments: Any) -> dict[str, Any]:
    job: dict[str, Any] = (await gql.data(SERIES, id=job_id, **arguments))["trainingJob"]
    return job


@pytest.fixture(name="app")
async def quiet_app_fixture(storage: MongoStorage) -> AsyncIterator[Any]:
    """The app with the change feed polling once a minute instead of every 0.15 s, for tests
    that count round trips (the feed's polls go through the same storage). Import it into a
    test module to use it instead of conftest's ``app``."""
    settings = Settings(graphiql=True, allowed_hosts=["testserver"], feed_poll_interval=60.0)
    application = create_app(settings, storage=storage)
    async with LifespanManager(application):
        yield application
