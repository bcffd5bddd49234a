"""What an idle subscribed connection keeps (issue 12 item 6: memory per idle subscriber).

Counted, not measured in bytes (bench.subscriptions measures those): a WebSocket's context
lives as long as the connection, and it used to make a dozen DataLoaders up front (~5 KiB per
subscriber, tracemalloc) that a subscription never reads (its executions get fresh loaders,
live/fanout.py); and uvicorn kept the handshake's request and response, with their headers
(~4.5 KiB), for the connection's life although it reads them only until it has answered.
"""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.dataloader import DataLoader
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from tests.api_helpers import create_job_id, mutate, register_id
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.test_live_fanout import subscribed, wait_subscribed
from tests.test_subscriptions import JOB_UPDATES, START, Live

RELATION_UPDATES = """
subscription($jobId: ID) {
  trainingJobUpdates(jobId: $jobId) { status job { jobId modelVersion { status } } }
}"""


def count_loaders(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    made: list[object] = []
    original = DataLoader.__init__

    def counted(self: DataLoader[Any, Any], *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(DataLoader, "__init__", counted)
    return made


@pytest.mark.parametrize("count", [1, 4])
async def test_idle_subscribed_connections_make_no_loaders(
    live: Live, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    made = count_loaders(monkeypatch)

    subscribers = await subscribed(live, server, count, JOB_UPDATES, jobId=job_id)
    await wait_subscribed(live, server, count)
    assert made == []

    # An event that reads a relation makes the one loader it reads, once for all subscribers
    # of the operation; nothing is made per connection.
    related = await subscribed(live, server, count, RELATION_UPDATES, jobId=job_id)
    await wait_subscribed(live, server, 2 * count)
    await mutate(http, START, id=job_id)
    for client, op in subscribers + related:
        await client.take(op, 1)
    assert len(made) == 1


async def test_an_accepted_connection_keeps_no_handshake(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    await subscribed(live, server, 3, JOB_UPDATES, jobId=job_id)
    await wait_subscribed(live, server, 3)

    def handshakes() -> list[tuple[object, object]]:
        return [
            (protocol.request, protocol.response)
            for protocol in server.uvicorn.server_state.connections
            if isinstance(protocol, WebSocketsSansIOProtocol)
        ]

    kept = await live.loop.peek(handshakes)
    assert len(kept) == 3
    assert kept == [(None, None)] * 3
