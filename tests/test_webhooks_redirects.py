"""A webhook receiver's redirect is not followed (docs/webhooks.md, which URLs are refused): a
3xx is a failed attempt, logged with its status, retried and then dead-lettered, and the
Location it names (here another local receiver; in an attack an internal address) is never
called."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from graphql_api.storage.mongo import MongoStorage
from tests.live_servers import eventually
from tests.test_webhooks_api import create, deliveries, serving
from tests.webhook_receiver import receiving


@asynccontextmanager
async def redirecting(status: int, location: str) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A receiver answering every request with ``status`` and ``Location: location``."""
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            requests.append(head + await reader.readexactly(length))
            writer.write(
                f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\ncontent-length: 0\r\n"
                "connection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/hook", requests


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    storage: MongoStorage, status: int
) -> None:
    async with (
        receiving() as elsewhere,
        redirecting(status, elsewhere.url) as (url, requests),
        serving(storage) as gql,
    ):
        await create(gql, url, events=["REGISTERED"])
        await gql.data(
            """mutation { registerModelVersion(input: {modelName: "churn", version: "1.0.0",
                 modelType: CLASSIFICATION}) { __typename } }"""
        )

        async def dead() -> bool:
            logged = await deliveries(gql)
            return bool(logged) and logged[0]["status"] == "DEAD_LETTERED"

        await eventually(dead, what="the redirected delivery to be dead-lettered")
        [entry] = await deliveries(gql)
        assert (entry["attempts"], entry["responseCode"]) == (3, status), entry
        assert len(requests) == 3
    assert elsewhere.received == []
