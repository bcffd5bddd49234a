"""updateWebhook and deleteWebhook through the API (issue 17 item 2): an update changes only
what it is given (null: unchanged, ``[]``: the filter cleared), delivery goes on from the
webhook's cursor with the new URL and filters, bad input changes nothing; a deleted webhook
leaves the list with its delivery log, and its changes stop going out while another
webhook's go on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from graphql_api.app import create_app
from graphql_api.live import cursor
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.live_servers import eventually
from tests.test_webhooks_api import FAST, create, lifecycle, verified
from tests.webhook_receiver import Receiver, receiving

UPDATE = """
mutation U($id: ID!, $url: String, $events: [ChangeKind!], $modelNames: [String!],
           $jobStatuses: [TrainingStatus!]) {
  updateWebhook(id: $id, url: $url, events: $events, modelNames: $modelNames,
                jobStatuses: $jobStatuses) {
    __typename
    ... on Webhook { id url events modelNames jobStatuses cursor }
    ... on Error { code message }
    ... on ValidationError { field rule }
    ... on NotFoundError { field }
  }
}"""
DELETE = """mutation D($id: ID!) { deleteWebhook(id: $id) {
  __typename ... on Webhook { id url } ... on NotFoundError { field } } }"""
LIST = "query { webhooks { id url events modelNames jobStatuses } }"
REGISTER = """mutation R($name: String!, $v: String!) { registerModelVersion(input: {
  modelName: $name, version: $v, modelType: CLASSIFICATION}) { __typename } }"""


@asynccontextmanager
async def serving(storage: MongoStorage) -> AsyncIterator[tuple[GraphQLClient, Starlette]]:
    settings: dict[str, Any] = dict(FAST)
    application = create_app(Settings(**settings), storage=storage)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield GraphQLClient(http), application


async def received(receiver: Receiver, count: int) -> None:
    async def enough() -> bool:
        return len(receiver.received) >= count

    await eventually(enough, what=f"{count} deliveries at {receiver.url}")


async def test_an_update_moves_delivery_to_the_new_url_and_filters(storage: MongoStorage) -> None:
    async with receiving() as first, receiving() as second, serving(storage) as (gql, _):
        created = await create(gql, first.url, events=["REGISTERED"], modelNames=["churn"])
        webhook_id, secret = created["webhook"]["id"], created["secret"]
        await gql.data(REGISTER, name="churn", v="0.9.0")
        await received(first, 1)

        updated = (await gql.data(UPDATE, id=webhook_id, url=second.url, events=["CREATED"]))[
            "updateWebhook"
        ]
        assert updated == {
            "__typename": "Webhook",
            "id": webhook_id,
            "url": second.url,
            "events": ["CREATED"],
            "modelNames": ["churn"],  # not given: unchanged
            "jobStatuses": [],
            "cursor": updated["cursor"],
        }
        await lifecycle(gql, "churn")  # REGISTERED, CREATED, STARTED, COMPLETED
        await lifecycle(gql, "fraud")  # another model: filtered out
        await received(second, 1)

        async def caught_up() -> bool:
            hooks = (await gql.data("query { webhooks { cursor } }"))["webhooks"]
            return bool(hooks[0]["cursor"] == cursor.encode(await storage.events.head()))

        # Every change so far handled under these filters (an update applies from the cursor).
        await eventually(caught_up, what="the webhook's cursor at the log's end")
        # Cleared filters: every change from here on (a model filter of [] is any model).
        cleared = await gql.data(UPDATE, id=webhook_id, events=[], modelNames=[])
        assert cleared["updateWebhook"]["events"] == []
        assert cleared["updateWebhook"]["modelNames"] == []
        await gql.data(REGISTER, name="fraud", v="2.0.0")
        await received(second, 2)
        bodies = verified(second, secret)  # the same secret signs at the new URL
        assert [b["type"] for b in bodies] == ["trainingJob.CREATED", "modelVersion.REGISTERED"]
        assert bodies[0]["data"]["trainingJob"]["modelId"]
        assert bodies[1]["data"]["modelVersion"]["modelName"] == "fraud"
        assert [b["type"] for b in verified(first, secret)] == ["modelVersion.REGISTERED"]


async def test_a_refused_update_changes_nothing(storage: MongoStorage) -> None:
    async with receiving() as receiver, serving(storage) as (gql, _):
        created = await create(gql, receiver.url, events=["COMPLETED"])
        webhook_id = created["webhook"]["id"]
        before = (await gql.data(LIST))["webhooks"]
        for variables, field, rule in (
            ({"url": "ftp://example.com/x"}, "url", "url_scheme"),
            ({"url": "https://user:pw@example.com/x"}, "url", "url"),
            ({"url": "x" * 5000}, "url", None),
            ({"modelNames": ["ok", ""]}, "modelNames[1]", None),
            ({"modelNames": ["ok", "bad\u0000name"]}, "modelNames[1]", None),
        ):
            result = (await gql.data(UPDATE, id=webhook_id, **variables))["updateWebhook"]
            assert result["__typename"] == "ValidationError", (variables, result)
            assert result["field"].startswith(field), (variables, result)
            assert rule is None or result["rule"] == rule, (variables, result)
        missing = (await gql.data(UPDATE, id="wh_nope", url=receiver.url))["updateWebhook"]
        assert (missing["__typename"], missing["field"]) == ("NotFoundError", "id")
        assert (await gql.data(LIST))["webhooks"] == before


async def test_a_deleted_webhook_stops_and_its_log_goes(storage: MongoStorage) -> None:
    async with receiving() as doomed, receiving() as kept, serving(storage) as (gql, app):
        gone = await create(gql, doomed.url)
        stays = await create(gql, kept.url)
        await gql.data(REGISTER, name="churn", v="1.0.0")
        await received(doomed, 1)
        await received(kept, 1)
        gone_id = gone["webhook"]["id"]

        async def logged() -> bool:
            return await storage.webhooks.count_deliveries(gone_id, None) == 1

        await eventually(logged, what="the delivery logged")
        deleted = (await gql.data(DELETE, id=gone_id))["deleteWebhook"]
        assert deleted == {"__typename": "Webhook", "id": gone_id, "url": doomed.url}
        assert [w["id"] for w in (await gql.data(LIST))["webhooks"]] == [stays["webhook"]["id"]]
        assert await storage.webhooks.count_deliveries(gone_id, None) == 0
        again = (await gql.data(DELETE, id=gone_id))["deleteWebhook"]
        assert again == {"__typename": "NotFoundError", "field": "id"}

        dispatcher: Any = app.state.webhooks

        async def stopped() -> bool:
            return gone_id not in dispatcher._tasks

        await eventually(stopped, what="the deleted webhook's delivery task to end")
        await gql.data(REGISTER, name="churn", v="1.1.0")
        await received(kept, 2)
        assert len(doomed.received) == 1
