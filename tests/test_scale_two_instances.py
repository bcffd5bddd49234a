"""Two `mltrain serve` processes over one database on the real server: the scale-out setup of
docs/deploy.md, as a user runs it.

* A change made through instance A reaches a subscriber on instance B, in log order, none
  missing and none twice, also when the changes are made concurrently.
* A cursor handed out by A resumes a subscription on B from exactly that point.
* Concurrent promotions of one model's versions, sent to both instances, leave exactly one
  version in production, and both instances name the same one.

Needs the real server (MLTRAIN_TEST_MONGODB_URI): a mock lives inside one process. The same
behaviour between two servers in one process over the mock is covered by
tests/test_subscriptions.py (across instances).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pymongo
import pytest

from tests.api_helpers import create_job_id, mutate, register_id
from tests.conftest import REAL_URI
from tests.live_servers import GraphQLHTTP, WSClient, serving
from tests.operations import COMPLETE, PROMOTE, REPORT, START

pytestmark = pytest.mark.skipif(REAL_URI is None, reason="needs MLTRAIN_TEST_MONGODB_URI")

JOB_UPDATES = """
subscription($modelId: ID, $after: String) {
  trainingJobUpdates(modelId: $modelId, after: $after) { cursor kind status job { jobId } }
}"""
JOB_HISTORY = """query($id: ID!) {
  trainingJob(jobId: $id) { history(first: 100) { edges { node { cursor kind status } } } }
}"""
VERSION = "query($id: ID!) { modelVersion(modelId: $id) { modelId status } }"
PRODUCTION = "query($name: String!) { productionModelVersion(modelName: $name) { modelId } }"


class Instance:
    """One running `mltrain serve`: its GraphQL URL over HTTP and over WebSocket."""

    def __init__(self, base_url: str) -> None:
        self.http = GraphQLHTTP(f"{base_url}/graphql")
        self.ws_url = f"{base_url.replace('http', 'ws', 1)}/graphql"


@pytest.fixture
async def instances() -> AsyncIterator[tuple[Instance, Instance]]:
    """Instances A and B: two processes over one fresh database, both answering."""
    database = f"mltrain_test_{uuid.uuid4().hex[:12]}"
    env = {
        "MLTRAIN_MONGODB_URI": str(REAL_URI),
        "MLTRAIN_MONGODB_DATABASE": database,
        "MLTRAIN_LOG_LEVEL": "warning",
    }
    try:
        with contextlib.ExitStack() as stack:
            first, second = (stack.enter_context(serving(env=env))[0] for _ in range(2))
            pair = Instance(first), Instance(second)
            try:
                yield pair
            finally:
                for instance in pair:
                    await instance.http.aclose()
    finally:
        with pymongo.MongoClient[dict[str, Any]](
            str(REAL_URI), serverSelectionTimeoutMS=5000
        ) as client:
            client.drop_database(database)


async def history(instance: Instance, job_id: str) -> list[dict[str, Any]]:
    data = await instance.http.data(JOB_HISTORY, id=job_id)
    return [edge["node"] for edge in data["trainingJob"]["history"]["edges"]]


async def run_job(instance: Instance, job_id: str, steps: int) -> None:
    """A job's life through ``instance``: started, ``steps`` metric reports, completed."""
    await mutate(instance.http, START, id=job_id)
    for step in range(steps):
        await mutate(instance.http, REPORT, id=job_id, metrics={"step": step})
    await mutate(instance.http, COMPLETE, id=job_id, metrics={"loss": 0.1})


async def logged_changes(instance: Instance, job_ids: list[str]) -> list[tuple[str, str, str]]:
    """Every change of these jobs as ``instance`` records it: (cursor, job, kind), log order."""
    changes = [
        (entry["cursor"], job_id, entry["kind"])
        for job_id in job_ids
        for entry in await history(instance, job_id)
    ]
    # Cursors are opaque; their order is the log's, which the history of each job keeps. The
    # merge across jobs goes by the order the subscriber must deliver them in: asserted below.
    return changes


def delivered(results: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (u["cursor"], u["job"]["jobId"], u["kind"])
        for u in (r["trainingJobUpdates"] for r in results)
    ]


async def test_concurrent_changes_through_a_reach_a_subscriber_on_b_in_log_order_none_missing(
    instances: tuple[Instance, Instance],
) -> None:
    a, b = instances
    model_id = await register_id(a.http, "1.0.0", f"scale-{uuid.uuid4().hex[:6]}")
    first_job = await create_job_id(a.http, model_id)
    (created,) = await history(a, first_job)
    client = await WSClient.open(b.ws_url)
    try:
        # From A's cursor of the first creation: the subscription on B cannot miss what A does
        # while B sets it up.
        op = await client.subscribe(JOB_UPDATES, modelId=model_id, after=created["cursor"])
        jobs = [first_job, *[await create_job_id(a.http, model_id) for _ in range(3)]]
        # Each job's life runs concurrently with the others', so A's appends interleave.
        await asyncio.gather(*(run_job(a, job_id, steps) for steps, job_id in enumerate(jobs)))
        expected = [c for c in await logged_changes(a, jobs) if c[0] != created["cursor"]]
        got = delivered(await client.take(op, len(expected), within=10))
        # None missing, none twice, and each job's changes in the order A made them.
        assert sorted(got) == sorted(expected)
        assert len(set(got)) == len(got)
        for job_id in jobs:
            assert [c for c in got if c[1] == job_id] == [c for c in expected if c[1] == job_id]
        # In log order across jobs: a resume from any delivered cursor yields exactly the rest.
        middle = len(got) // 2
        resumed = await client.subscribe(JOB_UPDATES, modelId=model_id, after=got[middle][0])
        rest = delivered(await client.take(resumed, len(got) - middle - 1, within=10))
        assert rest == got[middle + 1 :]
        assert await client.nothing_more(op) and await client.nothing_more(resumed)
    finally:
        await client.close()


async def test_a_cursor_given_by_a_resumes_on_b_from_exactly_there_then_live(
    instances: tuple[Instance, Instance],
) -> None:
    a, b = instances
    model_id = await register_id(a.http, "1.0.0", f"scale-{uuid.uuid4().hex[:6]}")
    job_id = await create_job_id(a.http, model_id)
    await run_job(a, job_id, 4)
    logged = await history(a, job_id)
    assert [e["kind"] for e in logged][:2] == ["CREATED", "STARTED"]
    client = await WSClient.open(b.ws_url)
    try:
        for start in (0, 2, len(logged) - 1):
            op = await client.subscribe(
                JOB_UPDATES, modelId=model_id, after=logged[start]["cursor"]
            )
            replayed = delivered(await client.take(op, len(logged) - start - 1, within=10))
            assert [(c, k) for c, _, k in replayed] == [
                (e["cursor"], e["kind"]) for e in logged[start + 1 :]
            ]
            assert await client.nothing_more(op)
            await client.unsubscribe(op)
        # Joined live at the seam: the next change through A arrives once, after the replay.
        op = await client.subscribe(JOB_UPDATES, modelId=model_id, after=logged[-1]["cursor"])
        assert await client.nothing_more(op)
        second_job = await create_job_id(a.http, model_id)
        (live_change,) = delivered(await client.take(op, 1, within=10))
        assert live_change[1:] == (second_job, "CREATED")
        assert live_change[0] == (await history(a, second_job))[0]["cursor"]
    finally:
        await client.close()


@pytest.mark.parametrize("trial", range(3))
async def test_promotions_racing_across_both_instances_keep_exactly_one_production_version(
    instances: tuple[Instance, Instance], trial: int
) -> None:
    a, b = instances
    rng = random.Random(trial)
    name = f"scale-{uuid.uuid4().hex[:6]}"
    versions = [await register_id(rng.choice((a, b)).http, f"1.{n}.0", name) for n in range(4)]
    for version in versions:  # DEVELOPMENT -> TESTING, the stage production is reached from
        await mutate(rng.choice((a, b)).http, PROMOTE, id=version, to="TESTING")
    # Each version twice or more, through either instance, all at once.
    calls = [(rng.choice((a, b)), version) for version in versions * 3]
    rng.shuffle(calls)
    answers = await asyncio.gather(
        *(i.http.data(PROMOTE, id=version, to="PRODUCTION") for i, version in calls)
    )
    outcomes = [answer["promoteModelVersion"] for answer in answers]
    # Losers are told so with a typed error (never a GraphQL error: http.data asserts that).
    assert {o["__typename"] for o in outcomes} <= {
        "ModelVersion",
        "ConflictError",
        "InvalidTransitionError",
    }
    assert any(o["__typename"] == "ModelVersion" for o in outcomes), outcomes
    for instance in (a, b):
        statuses = [
            (await instance.http.data(VERSION, id=v))["modelVersion"]["status"] for v in versions
        ]
        assert statuses.count("PRODUCTION") == 1, statuses
        in_production = versions[statuses.index("PRODUCTION")]
        production = (await instance.http.data(PRODUCTION, name=name))["productionModelVersion"]
        assert production == {"modelId": in_production}
