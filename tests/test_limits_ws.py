"""Over WebSocket, subscriptions meet the same checks as HTTP requests (issue 10, items 1, 17,
18): the cost limits (hostile fragment documents included), the operation name rule and typed
cursor errors, in both protocols. A refused subscription leaves the connection working. Real
uvicorn server, in-memory storage (nothing here reaches the database)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import (
    LEGACY_WS,
    TRANSPORT_WS,
    GraphQLHTTP,
    Server,
    ServerLoop,
    SubscriptionEnded,
    WSClient,
    eventually,
)
from tests.test_limits_cost import chain

PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]

JOB_UPDATES = "subscription { trainingJobUpdates { kind job { jobId } } }"
REGISTER = """mutation { registerModelVersion(input: {modelName: "m", version: "1.0.0",
  modelType: CLASSIFICATION}) { ... on ModelVersion { modelId } } }"""
CREATE_JOB = """mutation($model: ID!) {
  createTrainingJob(input: {modelId: $model, datasetId: "d"}) { ... on TrainingJob { jobId } } }"""

#: Subscriptions whose selection doubles at each fragment, within the token limit.
HOSTILE_SUBSCRIPTIONS = {
    "job fragments x2": chain(19, root="subscription{trainingJobUpdates{job{...F0}}}"),
    "job fragments x4": chain(14, width=4, root="subscription{trainingJobUpdates{job{...F0}}}"),
    "on the update": chain(
        40, on="TrainingJobUpdate", leaf="kind", root="subscription{trainingJobUpdates{...F0}}"
    ),
    "through inline fragments": chain(
        20,
        inline=True,
        root="subscription{modelVersionUpdates{version{trainingJobs{edges{node{...F0}}}}}}",
    ),
}


@pytest.fixture
async def server(server_loop: ServerLoop) -> AsyncIterator[Server]:
    async def connect_storage() -> MongoStorage:
        return MongoStorage.connect(None, f"mltrain_test_{uuid.uuid4().hex[:12]}")

    storage = await server_loop.call(connect_storage())
    settings = Settings(graphiql=False, feed_poll_interval=60.0, ws_keep_alive_interval=30.0)
    try:
        yield await server_loop.start(settings, storage)
    finally:
        await server_loop.stop_all()


@pytest.fixture(params=PROTOCOLS)
async def ws(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[WSClient]:
    client = await WSClient.open(server.ws_url, request.param)
    try:
        yield client
    finally:
        await client.close()


async def refusal(ws: WSClient, query: str) -> list[dict[str, Any]]:
    op_id = await ws.subscribe(query)
    with pytest.raises(SubscriptionEnded) as ended:
        await ws.next(op_id)
    return ended.value.errors


async def still_serves(ws: WSClient, server: Server, loop: ServerLoop) -> None:
    """A subscription on the same connection gets the next change."""
    op_id = await ws.subscribe(JOB_UPDATES)
    await eventually(lambda: loop.peek(lambda: server.feed.subscriber_count == 1))
    http = GraphQLHTTP(server.http_url)
    try:
        model = (await http.data(REGISTER))["registerModelVersion"]["modelId"]
        job = (await http.data(CREATE_JOB, model=model))["createTrainingJob"]["jobId"]
        event = await ws.next(op_id)
        assert event["trainingJobUpdates"] == {"kind": "CREATED", "job": {"jobId": job}}
    finally:
        await http.aclose()
        await ws.unsubscribe(op_id)


@pytest.mark.parametrize("name", list(HOSTILE_SUBSCRIPTIONS))
async def test_hostile_subscriptions_are_refused_for_their_cost(
    ws: WSClient, server: Server, server_loop: ServerLoop, name: str
) -> None:
    errors = await refusal(ws, HOSTILE_SUBSCRIPTIONS[name])
    assert [e["extensions"]["limit"] for e in errors] == ["maxQueryFields"], errors
    assert errors[0]["extensions"] == {
        "code": "LIMIT_EXCEEDED",
        "limit": "maxQueryFields",
        "max": 1000,
    }
    await still_serves(ws, server, server_loop)


async def test_subscriptions_meet_the_depth_limit(ws: WSClient) -> None:
    deep = """subscription { modelVersionUpdates { version { trainingJobs { edges { node {
      modelVersion { trainingJobs { edges { node { modelVersion { modelId } } } } } } } } } } }"""
    errors = await refusal(ws, deep)
    assert [e["extensions"]["limit"] for e in errors] == ["maxQueryDepth"]


async def test_several_operations_on_the_socket_need_a_name(ws: WSClient) -> None:
    two = (
        "subscription A { trainingJobUpdates { kind } }"
        " subscription B { modelVersionUpdates { kind } }"
    )
    errors = await refusal(ws, two)
    assert errors[0]["extensions"] == {
        "code": "VALIDATION_ERROR",
        "field": "operationName",
        "rule": "required",
    }


async def test_an_empty_subscription_cursor_is_a_typed_error(ws: WSClient) -> None:
    errors = await refusal(ws, 'subscription { trainingJobUpdates(after: "") { kind } }')
    assert errors[0]["extensions"] == {
        "code": "VALIDATION_ERROR",
        "field": "after",
        "rule": "cursor",
    }
