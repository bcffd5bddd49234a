"""replayWebhook and redeliverWebhookDelivery refuse what they cannot do and change nothing
(issue 17 item 2; docs/webhooks.md): a cursor that is not one, one beyond the log's end, one
older than the log keeps (rule ``retention``), an unknown webhook or delivery, a test message,
a delivery whose change the log no longer keeps."""

from __future__ import annotations

from typing import Any

from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.live_servers import eventually
from tests.test_webhooks_api import create, deliveries, lifecycle, serving, verified
from tests.webhook_receiver import receiving

REPLAY = """mutation P($id: ID!, $after: String!) { replayWebhook(id: $id, after: $after) {
  __typename ... on Webhook { cursor } ... on ValidationError { field rule message }
  ... on NotFoundError { field } } }"""
REDELIVER = """mutation R($id: ID!) { redeliverWebhookDelivery(id: $id) {
  __typename ... on WebhookDelivery { status } ... on ValidationError { field rule message }
  ... on NotFoundError { field } } }"""
TEST = """mutation T($id: ID!) { testWebhook(id: $id) { ... on WebhookDelivery { id } } }"""


async def cursor_of(gql: GraphQLClient) -> str:
    hooks = (await gql.data("query { webhooks { cursor } }"))["webhooks"]
    return str(hooks[0]["cursor"])


async def test_replay_and_redelivery_refusals_change_nothing(storage: MongoStorage) -> None:
    async with receiving() as receiver, serving(storage) as gql:
        created = await create(gql, receiver.url)
        webhook_id = created["webhook"]["id"]
        await lifecycle(gql, "churn")

        async def four_logged() -> bool:
            return len([d for d in await deliveries(gql) if d["status"] == "DELIVERED"]) == 4

        await eventually(four_logged, what="four deliveries logged")
        bodies = verified(receiver, created["secret"])
        first_cursor, last_cursor = bodies[0]["data"]["cursor"], bodies[-1]["data"]["cursor"]
        assert await cursor_of(gql) == last_cursor
        test_id = (await gql.data(TEST, id=webhook_id))["testWebhook"]["id"]
        sent = len(receiver.received)

        async def replay(webhook: str, after: str) -> dict[str, Any]:
            result: dict[str, Any] = (await gql.data(REPLAY, id=webhook, after=after))[
                "replayWebhook"
            ]
            return result

        for after in ("not-a-cursor", "", "Y2hnOjk5OTk5"):  # the last: chg:99999, past the end
            refused = await replay(webhook_id, after)
            assert (refused["__typename"], refused["field"]) == ("ValidationError", "after"), (
                after,
                refused,
            )
        missing = await replay("wh_nope", first_cursor)
        assert (missing["__typename"], missing["field"]) == ("NotFoundError", "id")

        for delivery_id in ("nope", test_id):
            refused = (await gql.data(REDELIVER, id=delivery_id))["redeliverWebhookDelivery"]
            assert (refused["__typename"], refused["field"]) == ("NotFoundError", "id"), refused

        # The log keeps only its newest change from here on.
        oldest = (await deliveries(gql))[-1]
        await storage.events.trim(None, 1, 1, 1000)
        assert await storage.events.floor() >= 3
        refused = await replay(webhook_id, first_cursor)
        assert (refused["__typename"], refused["field"], refused["rule"]) == (
            "ValidationError",
            "after",
            "retention",
        ), refused
        gone = (await gql.data(REDELIVER, id=oldest["id"]))["redeliverWebhookDelivery"]
        assert (gone["__typename"], gone["field"], gone["rule"]) == (
            "ValidationError",
            "id",
            "retention",
        ), gone

        # Nothing moved and nothing was sent.
        assert await cursor_of(gql) == last_cursor
        assert len(receiver.received) == sent
