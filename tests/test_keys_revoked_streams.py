"""A revocation ends HTTP subscription streams too (issue 17 item 3: a revocation takes effect
on every instance within one second): a multipart subscription opened on one instance with a
stored key ends, with an error naming the key, once the key is revoked through another
instance or expires; streams of other keys go on. Two real uvicorn servers over one database
on each backend (the ``pair`` fixture of tests/test_keys_propagation.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from graphql_api.auth.roles import Role
from tests.live_servers import ServerLoop, eventually
from tests.security_helpers import SECRETS
from tests.test_keys_propagation import CREATE, CREATE_EXPIRING, REVOKE, Pair, pair
from tests.test_transport_graphiql import APOLLO_ACCEPT, JOB_UPDATES, MultipartSubscription

__all__ = ["pair"]  # the fixture

REGISTER = """mutation($name: String!) { registerModelVersion(input: {modelName: $name,
  version: "1.0.0", modelType: CLASSIFICATION}) { ... on ModelVersion { modelId } } }"""
CREATE_JOB = """mutation($m: ID!) { createTrainingJob(input: {modelId: $m, datasetId: "d"}) {
  __typename } }"""


async def open_stream(pair: Pair, url: str, secret: str) -> httpx.Response:
    request = pair.http.build_request(
        "POST",
        url,
        json={"query": JOB_UPDATES, "operationName": "Jobs"},
        headers={"accept": APOLLO_ACCEPT, "Authorization": f"Bearer {secret}"},
    )
    response = await pair.http.send(request, stream=True)
    assert response.status_code == 200, (await response.aread()).decode()
    return response


async def ending(response: httpx.Response) -> list[dict[str, Any]]:
    """Every message of the stream until the server ends it (heartbeats left out); fails if
    it does not end within 20 s."""

    async def read_all() -> str:
        return "".join([chunk async for chunk in response.aiter_text()])

    body = await asyncio.wait_for(read_all(), 20)
    assert body.rstrip().endswith("--graphql--"), body[-200:]
    messages = []
    for part in body.split("\r\n--graphql"):
        _, _, text = part.partition("\r\n\r\n")
        if text.strip():
            message = json.loads(text)
            if message:
                messages.append(message)
    return messages


def assert_ended_for(messages: list[dict[str, Any]], name: str, why: str) -> None:
    last = messages[-1]
    assert last.get("payload") is None, last
    (error,) = last["errors"]
    assert name in error["message"] and why in error["message"], error
    assert error["extensions"]["code"] == "UNAUTHENTICATED", error


async def a_job_update(pair: Pair, stream: MultipartSubscription) -> dict[str, Any]:
    """A job created (through the second instance, whose stream it is) and its update."""
    registered = await pair.admin(pair.second, REGISTER, name=f"m-{uuid.uuid4().hex[:6]}")
    await pair.admin(pair.second, CREATE_JOB, m=registered["registerModelVersion"]["modelId"])
    return await stream.next_payload()


async def test_revocation_through_one_instance_ends_the_others_http_streams(pair: Pair) -> None:
    secret = (await pair.admin(pair.first, CREATE, name="streamer"))["createApiKey"]["secret"]

    async def accepted_by_second() -> bool:
        return (await pair.post(pair.second, secret, "{ __typename }")).status_code == 200

    await eventually(accepted_by_second, what="the second instance to accept the new key")
    revoked_streams = [await open_stream(pair, pair.second.http_url, secret) for _ in range(2)]
    bystander = await open_stream(pair, pair.second.http_url, SECRETS[Role.VIEWER])
    try:
        assert (await pair.admin(pair.first, REVOKE, name="streamer")) == {
            "revokeApiKey": {"__typename": "ApiKey"}
        }
        for response in revoked_streams:
            assert_ended_for(await ending(response), "streamer", "revoked")
        # Another key's stream goes on.
        update = await a_job_update(pair, MultipartSubscription(bystander))
        assert update["data"]["trainingJobUpdates"]["kind"] == "CREATED", update
    finally:
        for response in [*revoked_streams, bystander]:
            await response.aclose()


async def test_an_expiring_key_ends_its_http_streams_on_every_instance(pair: Pair) -> None:
    # Long enough for the second instance to take the key up and both streams to open on a
    # loaded machine; the streams end at the poll after the expiry.
    at = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    created = await pair.admin(pair.first, CREATE_EXPIRING, name="brief-stream", at=at)
    secret = created["createApiKey"]["secret"]

    async def accepted_by_second() -> bool:
        return (await pair.post(pair.second, secret, "{ __typename }")).status_code == 200

    await eventually(accepted_by_second, what="the second instance to accept the new key")
    streams = [
        await open_stream(pair, pair.first.http_url, secret),
        await open_stream(pair, pair.second.http_url, secret),
    ]
    try:
        for response in streams:
            assert_ended_for(await ending(response), "brief-stream", "expired")
    finally:
        for response in streams:
            await response.aclose()


async def test_a_stream_the_client_leaves_is_let_go(pair: Pair, server_loop: ServerLoop) -> None:
    """Watching a stream for its key's revocation does not keep it alive: when the client
    goes, its subscription and its watch end (nothing left running per stream)."""
    secret = (await pair.admin(pair.first, CREATE, name="leaver"))["createApiKey"]["secret"]

    async def accepted_by_second() -> bool:
        return (await pair.post(pair.second, secret, "{ __typename }")).status_code == 200

    await eventually(accepted_by_second, what="the second instance to accept the new key")
    server = pair.second

    async def held(count: int) -> bool:
        subscribers = await server_loop.peek(lambda: server.feed.subscriber_count)
        watched = await server_loop.peek(lambda: len(server.app.state.keys._streams))
        return bool(subscribers == count and watched == count)

    for _ in range(3):
        response = await open_stream(pair, server.http_url, secret)
        await eventually(lambda: held(1), what="the stream's subscription and watch")
        await response.aclose()
        await eventually(lambda: held(0), what="the stream's subscription and watch to end")
