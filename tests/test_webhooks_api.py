"""Webhooks through the API against a local receiver (a real socket): created with the secret
shown once, deliveries signed (verified with the Standard Webhooks reference library), in log
order, retried, dead-lettered, redelivered and replayed, with their delivery log; a hanging
receiver holds up only its own webhook; bad input changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from standardwebhooks.webhooks import Webhook as Verifier

from graphql_api.app import create_app
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.live_servers import eventually
from tests.webhook_receiver import Receiver, receiving

FAST = {
    "graphiql": False,
    "allowed_hosts": ["testserver"],
    "webhook_allow_private": True,
    "webhook_poll_interval": 0.05,
    "webhook_lease_seconds": 2.0,
    "webhook_retry_base": 0.01,
    "webhook_retry_cap": 0.05,
    "webhook_max_attempts": 3,
    "webhook_timeout": 1.0,
}

CREATE = """
mutation Create($url: String!, $events: [ChangeKind!], $modelNames: [String!],
                $jobStatuses: [TrainingStatus!]) {
  createWebhook(url: $url, events: $events, modelNames: $modelNames, jobStatuses: $jobStatuses) {
    __typename
    ... on CreatedWebhook { secret webhook { id url events modelNames jobStatuses cursor } }
    ... on ValidationError { field rule message }
  }
}"""

DELIVERIES = """
query Deliveries($status: WebhookDeliveryStatus, $first: Int, $after: String) {
  webhooks { id deliveries(status: $status, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id messageId eventType eventCursor status attempts responseCode
                   latencyMs error } } } }
}"""


@asynccontextmanager
async def serving(storage: MongoStorage, **settings: Any) -> AsyncIterator[GraphQLClient]:
    application = create_app(Settings(**{**FAST, **settings}), storage=storage)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield GraphQLClient(http)


async def lifecycle(gql: GraphQLClient, name: str) -> str:
    """Register a version, and run a job on it to completion; the job id."""
    registered = await gql.data(
        """mutation R($name: String!) { registerModelVersion(input: {modelName: $name,
             version: "1.0.0", modelType: CLASSIFICATION}) {
             ... on ModelVersion { modelId } } }""",
        name=name,
    )
    model_id = registered["registerModelVersion"]["modelId"]
    created = await gql.data(
        """mutation C($m: ID!) { createTrainingJob(input: {modelId: $m, datasetId: "d"}) {
             ... on TrainingJob { jobId } } }""",
        m=model_id,
    )
    job_id: str = created["createTrainingJob"]["jobId"]
    await gql.data(
        """mutation S($j: ID!) { startTrainingJob(jobId: $j) { __typename } }""", j=job_id
    )
    await gql.data(
        """mutation D($j: ID!) { completeTrainingJob(jobId: $j, metrics: {acc: 0.9}) {
             __typename } }""",
        j=job_id,
    )
    return job_id


async def create(gql: GraphQLClient, url: str, **filters: Any) -> dict[str, Any]:
    result = (await gql.data(CREATE, url=url, **filters))["createWebhook"]
    assert result["__typename"] == "CreatedWebhook", result
    return dict(result)


def verified(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    verifier = Verifier(secret)
    return [dict(verifier.verify(r.body, r.headers)) for r in receiver.received]


async def deliveries(gql: GraphQLClient, **args: Any) -> list[dict[str, Any]]:
    hooks = (await gql.data(DELIVERIES, **args))["webhooks"]
    return [e["node"] for e in hooks[0]["deliveries"]["edges"]]


async def test_changes_reach_the_receiver_signed_and_in_log_order(storage: MongoStorage) -> None:
    async with receiving() as receiver, serving(storage) as gql:
        created = await create(gql, receiver.url)
        secret = created["secret"]
        assert secret.startswith("whsec_")
        await lifecycle(gql, "churn")

        async def four() -> bool:
            return len(receiver.received) >= 4

        await eventually(four, what="four deliveries")
        bodies = verified(receiver, secret)
        assert [b["type"] for b in bodies] == [
            "modelVersion.REGISTERED",
            "trainingJob.CREATED",
            "trainingJob.STARTED",
            "trainingJob.COMPLETED",
        ]
        assert bodies[-1]["data"]["trainingJob"]["metrics"] == {"acc": 0.9}
        # The secret is shown once: the list never has it.
        listed = await gql.execute("query { webhooks { id url } }")
        assert secret not in str(listed)

        # The receiver answers before the dispatcher records the delivery: wait for the last.
        async def four_recorded() -> bool:
            return [d["status"] for d in await deliveries(gql)] == ["DELIVERED"] * 4

        await eventually(four_recorded, what="four deliveries recorded DELIVERED")
        logged = await deliveries(gql)
        assert [d["eventType"] for d in logged] == [b["type"] for b in reversed(bodies)]
        assert all(d["attempts"] == 1 and d["responseCode"] == 200 for d in logged)


async def test_filters_take_only_the_changes_asked_for(storage: MongoStorage) -> None:
    async with receiving() as receiver, serving(storage) as gql:
        created = await create(
            gql, receiver.url, modelNames=["fraud"], jobStatuses=["COMPLETED", "FAILED"]
        )
        await lifecycle(gql, "churn")
        await lifecycle(gql, "fraud")

        async def one() -> bool:
            return len(receiver.received) >= 1

        await eventually(one, what="a delivery")
        # The churn job completed first: had it passed the filter, it would be first.
        bodies = verified(receiver, created["secret"])
        assert [b["type"] for b in bodies] == ["trainingJob.COMPLETED"]
        assert bodies[0]["data"]["trainingJob"]["status"] == "COMPLETED"


async def test_a_failing_delivery_is_retried_with_the_same_id_then_delivered(
    storage: MongoStorage,
) -> None:
    async with receiving([500, 503]) as receiver, serving(storage) as gql:
        created = await create(gql, receiver.url, events=["COMPLETED"])
        await lifecycle(gql, "churn")

        async def delivered() -> bool:
            logged = await deliveries(gql)
            return bool(logged) and logged[0]["status"] == "DELIVERED"

        await eventually(delivered, what="the delivery to succeed")
        [entry] = await deliveries(gql)
        assert (entry["attempts"], entry["responseCode"]) == (3, 200)
        assert len(verified(receiver, created["secret"])) == 3
        assert {r.headers["webhook-id"] for r in receiver.received} == {entry["messageId"]}


async def test_dead_letter_then_the_next_one_goes_out_and_a_redelivery_succeeds(
    storage: MongoStorage,
) -> None:
    async with receiving([500, 500, 500]) as receiver, serving(storage) as gql:
        created = await create(gql, receiver.url, events=["STARTED", "COMPLETED"])
        await lifecycle(gql, "churn")

        async def both() -> bool:
            return {d["status"] for d in await deliveries(gql)} == {"DELIVERED", "DEAD_LETTERED"}

        await eventually(both, what="a dead letter and a delivery")
        [dead] = await deliveries(gql, status="DEAD_LETTERED")
        assert (dead["eventType"], dead["attempts"], dead["responseCode"]) == (
            "trainingJob.STARTED",
            3,
            500,
        )
        [done] = await deliveries(gql, status="DELIVERED")
        assert done["eventType"] == "trainingJob.COMPLETED"

        again = await gql.data(
            """mutation R($id: ID!) { redeliverWebhookDelivery(id: $id) {
                 __typename
                 ... on WebhookDelivery { status attempts responseCode messageId } } }""",
            id=dead["id"],
        )
        assert again["redeliverWebhookDelivery"] == {
            "__typename": "WebhookDelivery",
            "status": "DELIVERED",
            "attempts": 4,
            "responseCode": 200,
            "messageId": dead["messageId"],
        }
        bodies = verified(receiver, created["secret"])
        assert [b["type"] for b in bodies] == ["trainingJob.STARTED"] * 3 + [
            "trainingJob.COMPLETED",
            "trainingJob.STARTED",
        ]
        assert receiver.received[-1].headers["webhook-id"] == dead["messageId"]


async def test_replay_delivers_again_from_the_cursor_in_order(storage: MongoStorage) -> None:
    async with receiving() as receiver, serving(storage) as gql:
        created = await create(gql, receiver.url)
        await lifecycle(gql, "churn")

        async def four() -> bool:
            return len(receiver.received) >= 4

        await eventually(four, what="four deliveries")
        bodies = verified(receiver, created["secret"])
        after = bodies[1]["data"]["cursor"]  # trainingJob.CREATED
        replayed = await gql.data(
            """mutation P($id: ID!, $after: String!) { replayWebhook(id: $id, after: $after) {
                 __typename ... on Webhook { cursor } } }""",
            id=created["webhook"]["id"],
            after=after,
        )
        assert replayed["replayWebhook"] == {"__typename": "Webhook", "cursor": after}

        async def six() -> bool:
            return len(receiver.received) >= 6

        await eventually(six, what="the replay")
        again = verified(receiver, created["secret"])[4:]
        assert [b["type"] for b in again] == ["trainingJob.STARTED", "trainingJob.COMPLETED"]
        # A replayed event keeps its message id (receivers drop duplicates by it).
        assert (
            receiver.received[4].headers["webhook-id"] == receiver.received[2].headers["webhook-id"]
        )


async def test_test_webhook_sends_a_signed_ping_and_logs_it(storage: MongoStorage) -> None:
    async with receiving([418]) as receiver, serving(storage) as gql:
        created = await create(gql, receiver.url)
        answer = await gql.data(
            """mutation T($id: ID!) { testWebhook(id: $id) {
                 ... on WebhookDelivery { eventType status responseCode attempts } } }""",
            id=created["webhook"]["id"],
        )
        assert answer["testWebhook"] == {
            "eventType": "webhook.test",
            "status": "DEAD_LETTERED",
            "responseCode": 418,
            "attempts": 1,
        }
        [body] = verified(receiver, created["secret"])
        assert body["type"] == "webhook.test"


@asynccontextmanager
async def hanging() -> AsyncIterator[str]:
    """A receiver that accepts and reads, and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        try:
            yield f"http://127.0.0.1:{port}/hook"
        finally:
            for writer in held:
                writer.close()


async def test_a_hanging_receiver_times_out_and_holds_up_only_its_own_webhook(
    storage: MongoStorage,
) -> None:
    async with hanging() as stuck, receiving() as receiver, serving(storage) as gql:
        await create(gql, stuck, events=["COMPLETED"])
        healthy = await create(gql, receiver.url, events=["COMPLETED"])
        await lifecycle(gql, "churn")

        async def delivered() -> bool:
            return len(receiver.received) == 1

        await eventually(delivered, what="the healthy webhook's delivery")
        assert verified(receiver, healthy["secret"])[0]["type"] == "trainingJob.COMPLETED"

        async def timed_out() -> bool:
            hooks = (await gql.data(DELIVERIES))["webhooks"]
            nodes = [e["node"] for e in hooks[0]["deliveries"]["edges"]]
            return bool(nodes) and nodes[0]["error"] is not None

        await eventually(timed_out, within=10, what="the stuck webhook's attempt to time out")
        hooks = (await gql.data(DELIVERIES))["webhooks"]
        stuck_log = hooks[0]["deliveries"]["edges"][0]["node"]
        assert stuck_log["responseCode"] is None and "Timeout" in stuck_log["error"]


async def test_bad_input_is_refused_and_changes_nothing(storage: MongoStorage) -> None:
    async with serving(storage) as gql:
        unknown = await gql.execute(CREATE, url="http://127.0.0.1:9/x", events=["EXPLODED"])
        assert "errors" in unknown and "EXPLODED" in unknown["errors"][0]["message"]
        cases: list[tuple[dict[str, Any], str, str | None]] = [
            ({"url": "ftp://127.0.0.1/x"}, "url", "url_scheme"),
            ({"url": "http://user:pw@127.0.0.1/x"}, "url", "url"),
            ({"url": "http://127.0.0.1:99999/x"}, "url", "url"),
            ({"url": "http://" + "a" * 2050}, "url", "max_length"),
            (
                {"url": "http://127.0.0.1/x", "modelNames": ["ok", "a\u0000b"]},
                "modelNames[1]",
                None,
            ),
            ({"url": "http://127.0.0.1/x", "modelNames": ["m"] * 101}, "modelNames", "max_items"),
        ]
        for variables, field, rule in cases:
            result = (await gql.data(CREATE, **variables))["createWebhook"]
            assert result["__typename"] == "ValidationError", (variables, result)
            assert result["field"] == field, result
            if rule is not None:
                assert result["rule"] == rule, result
        assert (await gql.data("query { webhooks { id } }"))["webhooks"] == []
        missing = await gql.data(
            """mutation { deleteWebhook(id: "wh_nope") { __typename
                 ... on NotFoundError { field } } }"""
        )
        assert missing["deleteWebhook"] == {"__typename": "NotFoundError", "field": "id"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1.2.3:8080/hook",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:a9fe:a9fe]/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0177.0.0.1/hook",
        "http://127.1/hook",
        "http://localhost:8000/hook",
        "http://LocalHost/hook",
        "https://224.0.0.1/hook",
    ],
)
async def test_private_targets_are_refused(storage: MongoStorage, url: str) -> None:
    await refused_as_private(storage, url)


async def refused_as_private(storage: MongoStorage, url: str) -> None:
    """createWebhook with ``url`` on a server refusing private targets: a ValidationError
    (url, public_address), and no webhook stored."""
    async with serving(storage, webhook_allow_private=False) as gql:
        result = (await gql.data(CREATE, url=url))["createWebhook"]
        assert (result["__typename"], result["field"], result["rule"]) == (
            "ValidationError",
            "url",
            "public_address",
        ), result
        assert (await gql.data("query { webhooks { id } }"))["webhooks"] == []


async def test_the_address_is_checked_again_at_every_attempt(storage: MongoStorage) -> None:
    """A webhook stored while private targets were allowed is refused by an instance that does
    not allow them: each attempt fails without a request reaching the receiver."""
    async with receiving() as receiver:
        async with serving(storage) as gql:
            await create(gql, receiver.url, events=["REGISTERED"])
        async with serving(storage, webhook_allow_private=False) as gql:
            await gql.data(
                """mutation { registerModelVersion(input: {modelName: "churn", version: "1.0.0",
                     modelType: CLASSIFICATION}) { __typename } }"""
            )

            async def dead() -> bool:
                logged = await deliveries(gql)
                return bool(logged) and logged[0]["status"] == "DEAD_LETTERED"

            await eventually(dead, what="the delivery to be dead-lettered")
            [entry] = await deliveries(gql)
            assert entry["responseCode"] is None
            assert "not a public address" in entry["error"], entry
        assert receiver.received == []


async def test_at_most_100_webhooks_are_kept_also_under_concurrent_creates(
    storage: MongoStorage,
) -> None:
    async with serving(storage) as gql:
        for n in range(97):
            await create(gql, f"http://127.0.0.1:9/hook{n}")
        racing = await asyncio.gather(
            *(gql.data(CREATE, url=f"http://127.0.0.1:9/race{n}") for n in range(6))
        )
        results = [r["createWebhook"] for r in racing]
        refused = [r for r in results if r["__typename"] == "ValidationError"]
        assert all(r["rule"] == "max_items" for r in refused)
        stored = (await gql.data("query { webhooks { id } }"))["webhooks"]
        assert len(stored) <= 100
        assert len(stored) == 97 + len(results) - len(refused)
        last = (await gql.data(CREATE, url="http://127.0.0.1:9/one-more"))["createWebhook"]
        assert last["__typename"] == ("ValidationError" if len(stored) == 100 else "CreatedWebhook")
