"""The dead letter counts every failure of a message (issue 17 item 2: dead-lettered after a
configurable number of failures), not those of one run of the delivering task: when the
instance that was retrying a delivery stops (a restart, a deploy, a takeover after a crash)
the next holder goes on from the failures in the delivery log, so a receiver that stays down
gets MLTRAIN_WEBHOOK_MAX_ATTEMPTS attempts in all, then the webhook moves on."""

from __future__ import annotations

from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import eventually
from tests.test_webhooks_api import create, deliveries, serving
from tests.webhook_receiver import receiving

REGISTER = """mutation($v: String!) { registerModelVersion(input: {modelName: "churn",
  version: $v, modelType: CLASSIFICATION}) { __typename } }"""


async def test_failures_before_a_restart_count_toward_the_dead_letter(
    storage: MongoStorage,
) -> None:
    # The receiver stays down: every attempt fails.
    async with receiving([500] * 20) as receiver:
        # The first instance waits long after a failure (up to a minute: full jitter), and
        # is stopped while it waits.
        async with serving(storage, webhook_retry_base=60.0, webhook_retry_cap=60.0) as gql:
            await create(gql, receiver.url, events=["REGISTERED"])
            await gql.data(REGISTER, v="1.0.0")

            async def failed_once() -> bool:
                logged = await deliveries(gql)
                return bool(logged) and logged[0]["attempts"] >= 1

            await eventually(failed_once, what="the first failed attempt logged")
        first_run = len(receiver.received)
        assert 1 <= first_run < 3, first_run
        # The next instance (same limit, 3 attempts; short waits) goes on from the log.
        async with serving(storage) as gql:

            async def dead() -> bool:
                logged = await deliveries(gql)
                return bool(logged) and logged[-1]["status"] == "DEAD_LETTERED"

            await eventually(dead, what="the delivery to be dead-lettered")
            [entry] = await deliveries(gql)
            assert (entry["status"], entry["attempts"], entry["responseCode"]) == (
                "DEAD_LETTERED",
                3,
                500,
            )
            assert len(receiver.received) == 3
            ids = {r.headers["webhook-id"] for r in receiver.received}
            assert ids == {entry["messageId"]}
