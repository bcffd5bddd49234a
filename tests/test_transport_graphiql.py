"""GraphiQL runs subscriptions: over HTTP multipart (as GraphiQL sends them) through the same
schema, keys and connection caps as WebSocket; a subscription sent as a plain HTTP request
gets a clear 400; the page opens on mltrain's example and keeps no API key in localStorage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import parse, validate

from graphql_api.auth.roles import Role
from graphql_api.graphiql import EXAMPLE_OPERATIONS
from graphql_api.limits.rules import QueryLimits
from graphql_api.schema import build_schema
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import Server, ServerLoop
from tests.security_helpers import KEYS, SECRETS

#: What GraphiQL's multipart fetcher sends for every operation it does not route to a
#: WebSocket, and what Apollo Client sends for subscriptions.
GRAPHIQL_ACCEPT = "application/json, multipart/mixed"
APOLLO_ACCEPT = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json"

JOB_UPDATES = "subscription Jobs { trainingJobUpdates { kind status job { datasetId } } }"
REGISTER = """mutation { registerModelVersion(input: {modelName: "m", version: "1.0.0",
  modelType: CLASSIFICATION}) { ... on ModelVersion { modelId } } }"""
CREATE = """mutation($input: CreateTrainingJobInput!) {
  createTrainingJob(input: $input) { __typename } }"""


class Servers:
    def __init__(self, loop: ServerLoop) -> None:
        self.loop = loop

    async def start(self, **settings: Any) -> Server:
        async def connect_storage() -> MongoStorage:
            return MongoStorage.connect(None, f"graphiql_{uuid.uuid4().hex[:8]}")

        storage = await self.loop.call(connect_storage())
        return await self.loop.start(Settings(feed_poll_interval=60.0, **settings), storage)


@pytest.fixture
async def servers(server_loop: ServerLoop) -> AsyncIterator[Servers]:
    try:
        yield Servers(server_loop)
    finally:
        await server_loop.stop_all()


class MultipartSubscription:
    """One subscription streamed over HTTP multipart; ``payloads`` are its results."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._buffer = ""
        self._chunks = response.aiter_text()

    async def next_payload(self) -> dict[str, Any]:
        while True:
            parts = self._buffer.split("\r\n--graphql")
            for index, part in enumerate(parts[:-1]):
                _, _, body = part.partition("\r\n\r\n")
                if body.strip():
                    message = json.loads(body)
                    if "payload" in message:  # ({} is the heartbeat)
                        self._buffer = "\r\n--graphql".join(parts[index + 1 :])
                        payload: dict[str, Any] = message["payload"]
                        return payload
            self._buffer = "\r\n--graphql" + parts[-1] if len(parts) > 1 else self._buffer
            self._buffer += await asyncio.wait_for(anext(self._chunks), 10)


@contextlib.asynccontextmanager
async def subscribed(
    http: httpx.AsyncClient, url: str, accept: str, headers: dict[str, str] | None = None
) -> AsyncIterator[MultipartSubscription]:
    request = http.build_request(
        "POST",
        url,
        json={"query": JOB_UPDATES, "operationName": "Jobs"},
        headers={"accept": accept, **(headers or {})},
    )
    response = await http.send(request, stream=True)
    try:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("multipart/mixed")
        yield MultipartSubscription(response)
    finally:
        await response.aclose()


async def post(
    http: httpx.AsyncClient, url: str, query: str, headers: dict[str, str] | None = None, **v: Any
) -> dict[str, Any]:
    response = await http.post(
        url,
        json={"query": query, "variables": v},
        headers={"accept": GRAPHIQL_ACCEPT, **(headers or {})},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def first_update(
    http: httpx.AsyncClient,
    url: str,
    accept: str,
    headers: dict[str, str] | None = None,
    writer: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Subscribe over multipart (with ``headers``), cause a change (with ``writer``'s), and
    return the update the stream delivers."""
    async with subscribed(http, url, accept, headers) as stream:
        model_id = (await post(http, url, REGISTER, writer))["registerModelVersion"]["modelId"]
        job = {"modelId": model_id, "datasetId": f"ds-{uuid.uuid4().hex[:6]}"}
        await post(http, url, CREATE, writer, input=job)
        payload = await stream.next_payload()
    assert "errors" not in payload, payload
    update: dict[str, Any] = payload["data"]["trainingJobUpdates"]
    assert update["job"]["datasetId"] == job["datasetId"]
    return update


@pytest.mark.parametrize("accept", [GRAPHIQL_ACCEPT, APOLLO_ACCEPT, "multipart/mixed"])
async def test_graphiql_subscriptions_stream_over_http(
    servers: Servers, caplog: pytest.LogCaptureFixture, accept: str
) -> None:
    server = await servers.start()
    async with httpx.AsyncClient(timeout=10) as http:
        update = await first_update(http, server.http_url, accept)
    assert update == {"kind": "CREATED", "status": "PENDING", "job": update["job"]}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_queries_with_graphiqls_accept_header_stay_plain_json(servers: Servers) -> None:
    server = await servers.start()
    async with httpx.AsyncClient(timeout=10) as http:
        data = await post(http, server.http_url, "{ trainingJobs { totalCount } }")
    assert data == {"trainingJobs": {"totalCount": 0}}


@pytest.mark.parametrize(
    "accept", ["application/json", "application/graphql-response+json", "*/*", "text/event-stream"]
)
@pytest.mark.parametrize(
    "document",
    [
        "subscription { trainingJobUpdates { kind } }",
        JOB_UPDATES,
        "query Q { __typename } subscription S { trainingJobUpdates { kind } }",
    ],
)
async def test_a_subscription_where_it_cannot_be_served_is_a_clear_400(
    servers: Servers, caplog: pytest.LogCaptureFixture, accept: str, document: str
) -> None:
    server = await servers.start()
    operation = "S" if "query Q" in document else None
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            server.http_url,
            json={"query": document, "operationName": operation},
            headers={"accept": accept},
        )
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert "WebSocket" in error["message"] and "multipart/mixed" in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_http_subscriptions_need_a_key_and_count_against_its_cap(
    servers: Servers,
) -> None:
    entries = ",".join(key.entry() for key in KEYS.keys)
    server = await servers.start(api_keys=entries, max_connections_per_key=1)
    operator = {"Authorization": f"Bearer {SECRETS[Role.OPERATOR]}"}
    viewer = {"Authorization": f"Bearer {SECRETS[Role.VIEWER]}"}
    async with httpx.AsyncClient(timeout=10) as http:
        anonymous = await http.post(
            server.http_url, json={"query": JOB_UPDATES}, headers={"accept": GRAPHIQL_ACCEPT}
        )
        assert anonymous.status_code == 401
        async with subscribed(http, server.http_url, GRAPHIQL_ACCEPT, viewer):
            # The viewer key's one connection is taken by the open stream.
            second = await http.post(
                server.http_url,
                json={"query": JOB_UPDATES},
                headers={"accept": GRAPHIQL_ACCEPT, **viewer},
            )
            assert second.status_code == 429
            assert "MLTRAIN_MAX_CONNECTIONS_PER_KEY" in second.json()["errors"][0]["message"]
        # Closed: the slot is free again (once the server has seen the close).
        for _ in range(500):
            if await server_connections(servers, server, "viewer-key") == 0:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the closed stream's slot was never freed")
        update = await first_update(http, server.http_url, GRAPHIQL_ACCEPT, viewer, operator)
        assert update["kind"] == "CREATED"


async def server_connections(servers: Servers, server: Server, key_name: str) -> int:
    graphql = server.app.router.routes[1].app  # the WebSocketRoute's GraphQLEndpoint
    count: int = await servers.loop.peek(lambda: graphql.connections.open(key_name))
    return count


async def test_the_open_mode_stream_cap_is_per_address(servers: Servers) -> None:
    server = await servers.start(max_connections_per_address=1)
    async with (
        httpx.AsyncClient(timeout=10) as http,
        subscribed(http, server.http_url, GRAPHIQL_ACCEPT),
    ):
        second = await http.post(
            server.http_url, json={"query": JOB_UPDATES}, headers={"accept": GRAPHIQL_ACCEPT}
        )
    assert second.status_code == 429
    assert "MLTRAIN_MAX_CONNECTIONS_PER_ADDRESS" in second.json()["errors"][0]["message"]


# The page ---------------------------------------------------------------------------------


async def test_the_page_opens_on_mltrains_example_and_keeps_no_headers(servers: Servers) -> None:
    server = await servers.start()
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(server.http_url, headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "shouldPersistHeaders: false" in page.text
    assert "shouldPersistHeaders: true" not in page.text
    assert "Welcome to GraphiQL" not in page.text
    assert 'productionModelVersion(modelName: "churn-predictor")' in page.text
    assert "subscription JobUpdates" in page.text


def test_the_example_operations_are_valid_against_the_schema() -> None:
    schema = build_schema(
        QueryLimits(max_depth=10, max_aliases=30, max_root_fields=10, max_tokens=2000),
        introspection=True,
    )
    document = parse(EXAMPLE_OPERATIONS)
    assert validate(schema._schema, document) == []
    assert len(document.definitions) == 3
