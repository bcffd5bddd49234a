"""A webhook's delivery log does not grow forever: the change log's retention run deletes the
entries of the events it deleted (they can no longer be redelivered or replayed), and keeps
only the newest test pings. Entries of events still in the log stay, and new ones keep coming."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.live.cursor import decode
from graphql_api.services import webhooks as webhook_service
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.live_servers import eventually
from tests.test_live_retention import filler
from tests.test_webhooks_api import FAST, create, deliveries
from tests.webhook_receiver import receiving

REGISTER = """mutation($v: String!) { registerModelVersion(input: {modelName: "churn",
  version: $v, modelType: CLASSIFICATION}) { __typename } }"""
TEST = """mutation($id: ID!) { testWebhook(id: $id) { __typename } }"""
RETAINED = 1000  # the least count a server keeps (Settings refuses less)


@asynccontextmanager
async def serving(storage: MongoStorage) -> AsyncIterator[tuple[Any, GraphQLClient]]:
    settings: dict[str, Any] = {**FAST, "event_retention_count": RETAINED}
    application = create_app(Settings(**settings), storage=storage)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield application, GraphQLClient(http)


async def delivered(gql: GraphQLClient, count: int) -> list[dict[str, Any]]:
    async def done() -> bool:
        logged = await deliveries(gql, first=100)
        events = [e for e in logged if e["eventType"] != "webhook.test"]
        return len(events) >= count and all(e["status"] == "DELIVERED" for e in events)

    await eventually(done, what=f"{count} deliveries")
    return await deliveries(gql, first=100)


async def test_the_delivery_log_keeps_what_the_change_log_still_holds(
    storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_service, "KEPT_TEST_PINGS", 2)
    async with receiving() as receiver, serving(storage) as (app, gql):
        webhook = (await create(gql, receiver.url, events=["REGISTERED"]))["webhook"]
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            await gql.data(REGISTER, v=version)
        old = await delivered(gql, 3)
        for _ in range(4):
            await gql.data(TEST, id=webhook["id"])
        # Other clients' changes (not for this webhook) push the three out of the kept count.
        numbers = iter(range(RETAINED + 300))

        async def writer() -> None:
            for n in numbers:
                await storage.events.append(filler(n))

        await asyncio.gather(*(writer() for _ in range(8)))
        await gql.data(REGISTER, v="2.0.0")
        await delivered(gql, 4)  # the webhook's cursor is past the fillers

        floor = await app.state.retention.run_once()

        assert floor >= max(decode(e["eventCursor"]) for e in old if e["eventCursor"])
        logged = await deliveries(gql, first=100)
        kinds = [e["eventType"] for e in logged]
        # The three deleted events' entries are gone; the kept event's stays; 2 of 4 pings.
        assert kinds.count("modelVersion.REGISTERED") == 1, logged
        assert kinds.count("webhook.test") == 2, logged
        assert len(receiver.received) == 4 + 4  # nothing was sent again
        # The log goes on.
        await gql.data(REGISTER, v="2.1.0")
        after = await delivered(gql, 2)
        assert [e["eventType"] for e in after].count("modelVersion.REGISTERED") == 2


async def test_a_run_that_deletes_no_event_leaves_the_log_as_it_is(
    storage: MongoStorage,
) -> None:
    async with receiving() as receiver, serving(storage) as (app, gql):
        await create(gql, receiver.url, events=["REGISTERED"])
        for version in ("1.0.0", "1.1.0"):
            await gql.data(REGISTER, v=version)
        before = await delivered(gql, 2)

        assert await app.state.retention.run_once() == 0

        assert await deliveries(gql, first=100) == before
