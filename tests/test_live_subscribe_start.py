"""A subscription without ``after`` starts at the present: the log's head when it is opened, read
from storage, not the feed's position, which can lag the log (a poll not yet run, a wake-up
not yet handled: a busy server). Otherwise a change made just before subscribing would still
arrive (docs/subscriptions.md: "Without `after`, a subscription starts at the present").

The lag is made deterministic: the feed's reads of the log wait at a gate the test holds shut,
so changes made meanwhile are in the log but not yet fanned out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from graphql_api.domain.events import ChangeEvent, LogEntry
from graphql_api.live.notify import NotifyingEventStore, NotifyingStorage
from graphql_api.settings import Settings
from graphql_api.storage.base import EventStore
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import create_job_id, mutate, register_id
from tests.conftest import BACKENDS, REAL_URI
from tests.live_servers import GraphQLHTTP, Server, ServerLoop, WSClient, eventually
from tests.test_subscriptions import JOB_UPDATES, MODEL_UPDATES, PROMOTE, START


def ignore(event: ChangeEvent) -> None:
    """The outer wrapper's append hook: the app wraps the storage again and wakes its feed."""


class HeldLogReads(NotifyingEventStore):
    """The event store with the feed's log reads (``entries_after``) held while ``open`` is
    clear; ``held`` counts the reads waiting."""

    def __init__(self, inner: EventStore) -> None:
        super().__init__(inner, ignore)
        self.open = asyncio.Event()
        self.open.set()
        self.held = 0

    async def entries_after(self, seq: int, limit: int) -> list[LogEntry]:
        self.held += 1
        try:
            await self.open.wait()
        finally:
            self.held -= 1
        return await super().entries_after(seq, limit)


@dataclass
class Lagging:
    loop: ServerLoop
    server: Server
    storage: MongoStorage
    reads: HeldLogReads
    http: GraphQLHTTP

    async def hold_the_feed(self) -> None:
        """Shut the gate and wait until the feed's next log read waits at it."""
        await self.loop.peek(self.reads.open.clear)
        await eventually(lambda: self.loop.peek(lambda: self.reads.held > 0), what="a held read")

    async def release_the_feed(self) -> None:
        await self.loop.peek(self.reads.open.set)

    async def lag(self) -> int:
        """How far the feed's position is behind the log's head."""
        head = await self.loop.call(self.storage.events.head())
        return head - await self.loop.peek(lambda: self.server.feed.position)


@pytest.fixture(params=BACKENDS)
async def lagging(
    request: pytest.FixtureRequest, server_loop: ServerLoop
) -> AsyncIterator[Lagging]:
    name = f"mltrain_test_{uuid.uuid4().hex[:12]}"
    uri = REAL_URI if request.param == "real" else None

    async def prepare() -> tuple[MongoStorage, NotifyingStorage, HeldLogReads]:
        storage = MongoStorage.connect(uri, name)
        held = NotifyingStorage(storage, ignore)
        reads = HeldLogReads(storage.events)
        held.events = reads
        return storage, held, reads

    storage, held, reads = await server_loop.call(prepare())
    server = await server_loop.start(Settings(graphiql=False), held)
    http = GraphQLHTTP(server.http_url)
    try:
        yield Lagging(server_loop, server, storage, reads, http)
    finally:
        await http.aclose()
        await server_loop.call(release(reads))
        await server_loop.stop_all()

        async def drop_and_close() -> None:
            if uri is not None:
                await storage.database.client.drop_database(name)
            await storage.close()

        await server_loop.call(drop_and_close())


async def release(reads: HeldLogReads) -> None:
    reads.open.set()


Change = Callable[[GraphQLHTTP, dict[str, str]], Awaitable[Any]]


async def create_a_job(http: GraphQLHTTP, ids: dict[str, str]) -> None:
    ids["job"] = await create_job_id(http, ids["model"])


async def start_the_job(http: GraphQLHTTP, ids: dict[str, str]) -> None:
    await mutate(http, START, id=ids["job"])


async def register_a_version(http: GraphQLHTTP, ids: dict[str, str]) -> None:
    ids["version"] = await register_id(http, version="2.0.0")


async def promote_the_version(http: GraphQLHTTP, ids: dict[str, str]) -> None:
    await mutate(http, PROMOTE, id=ids["version"])


# (subscription, its variables, a change before subscribing, one after, the field, the kind
# the first event must have: the later change's)
CASES = {
    "all-jobs": (JOB_UPDATES, {}, create_a_job, start_the_job, "trainingJobUpdates", "STARTED"),
    "model-filter": (
        JOB_UPDATES,
        {"modelId": "model"},
        create_a_job,
        start_the_job,
        "trainingJobUpdates",
        "STARTED",
    ),
    "versions": (
        MODEL_UPDATES,
        {"modelName": "churn"},
        register_a_version,
        promote_the_version,
        "modelVersionUpdates",
        "PROMOTED",
    ),
}


@pytest.mark.parametrize("case", CASES)
async def test_a_change_made_before_subscribing_is_not_sent_while_the_feed_lags(
    lagging: Lagging, case: str
) -> None:
    query, variables, before, after, field, first_kind = CASES[case]
    ids = {"model": await register_id(lagging.http)}
    await lagging.hold_the_feed()
    await before(lagging.http, ids)
    assert await lagging.lag() > 0  # the change is in the log, the feed has not read it

    client = await WSClient.open(lagging.server.ws_url)
    try:
        op = await client.subscribe(query, **{k: ids.get(v, v) for k, v in variables.items()})
        await eventually(
            lambda: lagging.loop.peek(lambda: lagging.server.feed.subscriber_count == 1),
            what="the subscription",
        )
        await lagging.release_the_feed()
        await eventually(lambda: _caught_up(lagging), what="the feed to catch up")
        await after(lagging.http, ids)
        # Events arrive in log order: the first one being the later change's shows the
        # earlier one was not sent.
        (event,) = await client.take(op, 1)
        assert event[field]["kind"] == first_kind
    finally:
        await client.close()


async def _caught_up(lagging: Lagging) -> bool:
    return await lagging.lag() == 0
