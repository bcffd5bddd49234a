"""Two `mltrain serve` processes over one database: exactly one delivers (the lease holder);
kill -9 it and the other takes over from the stored cursor, every change still delivered, in
log order, signed. Real server only (two processes share nothing else)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from standardwebhooks.webhooks import Webhook as Verifier

from tests.conftest import REAL_URI
from tests.live_servers import GraphQLHTTP, eventually, serving_process
from tests.webhook_receiver import receiving

pytestmark = pytest.mark.skipif(not REAL_URI, reason="needs MLTRAIN_TEST_MONGODB_URI")


@contextmanager
def instance(database: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    env = dict(
        MLTRAIN_MONGODB_URI=str(REAL_URI),
        MLTRAIN_MONGODB_DATABASE=database,
        MLTRAIN_WEBHOOK_ALLOW_PRIVATE="true",
        MLTRAIN_WEBHOOK_POLL_INTERVAL="0.1",
        MLTRAIN_WEBHOOK_LEASE_SECONDS="1.5",
        MLTRAIN_FEED_POLL_INTERVAL="0.1",
    )
    with serving_process(env=env, start_within=60) as (url, process, _):
        yield f"{url}/graphql", process


async def register(gql: GraphQLHTTP, name: str, version: str) -> None:
    done = await gql.data(
        """mutation R($name: String!, $v: String!) { registerModelVersion(input: {
             modelName: $name, version: $v, modelType: CLASSIFICATION}) { __typename } }""",
        name=name,
        v=version,
    )
    assert done["registerModelVersion"]["__typename"] == "ModelVersion", done


async def test_another_instance_takes_over_when_the_delivering_one_is_killed() -> None:
    database = f"mltrain_takeover_{uuid.uuid4().hex[:10]}"
    client: Any = AsyncMongoClient(REAL_URI, tz_aware=True)
    try:
        with instance(database) as (url_a, proc_a), instance(database) as (url_b, proc_b):
            a, b = GraphQLHTTP(url_a), GraphQLHTTP(url_b)
            async with receiving() as receiver:
                created = await a.data(
                    """mutation C($url: String!) { createWebhook(url: $url) {
                         ... on CreatedWebhook { secret } } }""",
                    url=receiver.url,
                )
                secret = created["createWebhook"]["secret"]
                await register(a, "churn", "1.0.0")

                async def received(count: int) -> bool:
                    return len(receiver.received) >= count

                await eventually(lambda: received(1), within=20, what="the first delivery")

                async def holder() -> str:
                    doc = await client[database]["leaders"].find_one({"_id": "webhooks"})
                    return str(doc["holder"]) if doc else ""

                leader_pid = int((await holder()).split(":")[1])
                leader, survivor, gql = (
                    (proc_a, proc_b, b) if leader_pid == proc_a.pid else (proc_b, proc_a, a)
                )
                assert leader.pid == leader_pid
                os.kill(leader.pid, signal.SIGKILL)
                leader.wait(timeout=10)
                for n in range(2, 6):
                    await register(gql, "churn", f"1.{n}.0")

                async def last_delivered() -> bool:
                    # At least once: a repeat of the event in flight at the kill may arrive too,
                    # so wait for the last change rather than for a count of deliveries.
                    return any(b'"1.5.0"' in r.body for r in receiver.received)

                await eventually(last_delivered, within=30, what="deliveries after the kill")

                async def taken_over() -> bool:
                    return f":{survivor.pid}:" in await holder()

                assert await taken_over()
                await a.aclose()
                await b.aclose()
        verifier = Verifier(secret)
        bodies = [verifier.verify(r.body, r.headers) for r in receiver.received]
        versions = [body["data"]["modelVersion"]["version"] for body in bodies]
        # At least once, in log order: every change, none out of order (a repeat is allowed
        # only of the event in flight at the kill, right where it was).
        assert sorted(set(versions), key=versions.index) == [
            "1.0.0",
            "1.2.0",
            "1.3.0",
            "1.4.0",
            "1.5.0",
        ]
        ids = [r.headers["webhook-id"] for r in receiver.received]
        deduplicated = [i for n, i in enumerate(ids) if n == 0 or ids[n - 1] != i]
        assert len(set(deduplicated)) == len(deduplicated) == 5
    finally:
        await client.drop_database(database)
        await client.close()
