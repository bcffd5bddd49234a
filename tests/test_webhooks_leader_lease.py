"""The delivering instance's lease is a leader lease (``LeaderStore``, collection ``leaders``,
lease ``webhooks``), the same mechanism as the liveness sweep's: taken and renewed while it
delivers, released by a clean shutdown, taken over by another instance once it expires, and
its round trips (and those of the deliveries it runs) are no request's cost. Both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from graphql_api.webhooks.dispatcher import LEASE, WebhookDispatcher
from graphql_api.webhooks.retry import RetryPolicy
from tests.conftest import GraphQLClient
from tests.live_servers import eventually
from tests.operations import CREATE_JOB, REGISTER

JOBS = "query { trainingJobs(first: 20) { edges { node { jobId modelVersion { modelName } } } } }"
CREATE_WEBHOOK = """mutation C($url: String!) { createWebhook(url: $url) {
  ... on CreatedWebhook { secret } } }"""


async def lease_holder(storage: MongoStorage) -> str | None:
    doc = await storage.database["leaders"].find_one({"_id": LEASE})
    return None if doc is None else str(doc["holder"])


@pytest.fixture
async def delivering_gql(storage: MongoStorage) -> AsyncIterator[tuple[GraphQLClient, Any]]:
    # The dispatcher renews its lease and reads the log every 10 ms: always at work while the
    # requests below run.
    settings = Settings(
        allowed_hosts=["testserver"],
        webhook_allow_private=True,
        webhook_poll_interval=0.01,
        webhook_lease_seconds=5,
    )
    application = create_app(settings, storage=storage)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield GraphQLClient(http), application


async def test_the_delivering_instance_holds_the_leader_lease_and_releases_it_at_shutdown(
    storage: MongoStorage,
) -> None:
    settings = Settings(allowed_hosts=["testserver"], webhook_poll_interval=0.01)
    application = create_app(settings, storage=storage)
    async with LifespanManager(application):
        holder: str = application.state.webhooks.holder

        async def held() -> bool:
            return await lease_holder(storage) == holder

        await eventually(held, what="the webhooks lease in leaders")
        # One lease concept: nothing else holds a webhook lease.
        assert "leases" not in await storage.database.list_collection_names()
    # A clean shutdown hands the deliveries over at once.
    assert await lease_holder(storage) is None


async def test_a_requests_round_trips_leave_out_the_dispatchers(
    delivering_gql: tuple[GraphQLClient, Any], storage: MongoStorage
) -> None:
    gql, application = delivering_gql
    version = {"modelName": "m", "version": "1.0.0", "modelType": "REGRESSION"}
    model_id = (await gql.data(REGISTER, input=version))["registerModelVersion"]["modelId"]
    for _ in range(5):
        await gql.data(CREATE_JOB, input={"modelId": model_id, "datasetId": "d"})
    # A webhook (after the changes: nothing to send), so the dispatcher's task reads the log.
    created = await gql.data(CREATE_WEBHOOK, url="http://127.0.0.1:9/hook")
    assert created["createWebhook"]["secret"]
    dispatcher = application.state.webhooks

    async def following() -> bool:
        return dispatcher.leading and bool(dispatcher._tasks)

    await eventually(following, what="the dispatcher following the webhook")
    for _ in range(20):
        storage.stats.round_trips = 0
        await gql.data(JOBS)
        # One for the page, one for the versions it names; the dispatcher's are not here.
        assert storage.stats.round_trips == 2
    assert dispatcher._task is not None and not dispatcher._task.done()


def _dispatcher(storage: MongoStorage, holder: str) -> WebhookDispatcher:
    async def send(url: str, headers: dict[str, str], body: bytes) -> int:
        return 200

    return WebhookDispatcher(
        storage,
        send,
        RetryPolicy(base=0.01, cap=0.01, max_attempts=1),
        poll_interval=0.02,
        lease_seconds=0.6,
        gap_grace=0.1,
        holder=holder,
    )


async def test_another_dispatcher_takes_over_once_the_holders_lease_expires(
    storage: MongoStorage,
) -> None:
    first, second = _dispatcher(storage, "first"), _dispatcher(storage, "second")
    await first.start()
    try:

        async def first_leads() -> bool:
            return first.leading and await lease_holder(storage) == "first"

        await eventually(first_leads, what="the first dispatcher's lease")
        await second.start()
        try:
            # While the first renews, the second's tries are refused (the lease is unexpired).
            now = datetime.now(UTC)
            assert not await storage.leaders.acquire(LEASE, "third", now, now)
            assert not second.leading
            # The first dies without releasing (its task ends, no renewal, the document stays).
            assert first._task is not None
            first._task.cancel()
            await first._stop_all()
            assert await lease_holder(storage) == "first"

            async def second_leads() -> bool:
                return second.leading and await lease_holder(storage) == "second"

            await eventually(second_leads, within=10, what="the takeover after the expiry")
        finally:
            await second.stop()
        # The second's clean stop released the lease; the first, stopped now, holds nothing.
        assert await lease_holder(storage) is None
    finally:
        first.leading = False
        await first.stop()
