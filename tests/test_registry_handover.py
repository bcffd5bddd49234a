"""The production hand-over has no gap, proven with real processes and real sockets.

Fifty deployments of one model name, one after the other, through `mltrain serve`, while
readers poll ``productionModelVersion`` (and ``modelVersionByAlias(alias: "production")``, the
same pointer) as fast as they can (each sends its next request the
moment the last one is answered). On the real server there are two `mltrain serve` processes
over one database: deployments go through A, readers poll both A and B, so a reader also sees
what another instance changed. For every poll the test knows how many deployments had been
answered when it was sent and when its answer came back, and checks:

* never null, and never a version whose status is not PRODUCTION;
* never a version older than one whose deployment had already been answered when the poll was
  sent, and never one newer than the deployment under way when it came back: at any moment a
  reader sees the old version or the new one, one at a time, in that order (never two versions
  alternating, never one rolled back);
* each reader's answers only move forward;
* the readers really raced the deployments: every deployment ran with polls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pymongo
import pytest

from tests.conftest import BACKENDS, REAL_URI
from tests.live_servers import GraphQLHTTP, serving
from tests.operations import PROMOTE, REGISTER

DEPLOYMENTS = 50
#: Readers in all, spread over the instances.
READERS = 4
PRODUCTION = """
query($name: String!) {
  productionModelVersion(modelName: $name) { modelId version status }
  byAlias: modelVersionByAlias(modelName: $name, alias: "production") { modelId status }
}"""


@dataclass
class Poll:
    reader: int
    #: Deployments answered when the poll was sent, and when its answer came back.
    answered_before: int
    answered_after: int
    #: Index of the version answered (0 = the one in production at the start), or None.
    answer: int | None
    status: str | None


@dataclass
class Clock:
    """How many deployments have been answered; the readers stamp their polls with it."""

    answered: int = 0
    done: bool = False
    polls: list[Poll] = field(default_factory=list)
    polled: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, poll: Poll) -> None:
        self.polls.append(poll)
        self.polled.set()

    async def wait_for_polls(self, count: int, readers: list[asyncio.Task[None]]) -> None:
        while len(self.polls) < count:
            for reader in readers:
                if reader.done():
                    reader.result()  # a reader that failed fails the test here
                    raise AssertionError("a reader stopped early")
            self.polled.clear()
            await self.polled.wait()


@contextlib.contextmanager
def instance_urls(backend: str) -> Iterator[list[str]]:
    """One `mltrain serve` on the in-memory backend; two over one database on the real one."""
    if backend == "mock":
        with serving(env={"MLTRAIN_LOG_LEVEL": "warning"}) as (url, _):
            yield [url]
        return
    database = f"mltrain_test_{uuid.uuid4().hex[:12]}"
    env = {
        "MLTRAIN_MONGODB_URI": str(REAL_URI),
        "MLTRAIN_MONGODB_DATABASE": database,
        "MLTRAIN_LOG_LEVEL": "warning",
    }
    try:
        with contextlib.ExitStack() as stack:
            yield [stack.enter_context(serving(env=env))[0] for _ in range(2)]
    finally:
        with pymongo.MongoClient[dict[str, Any]](
            str(REAL_URI), serverSelectionTimeoutMS=5000
        ) as client:
            client.drop_database(database)


@pytest.fixture(params=BACKENDS)
async def clients(request: pytest.FixtureRequest) -> AsyncIterator[list[GraphQLHTTP]]:
    with instance_urls(request.param) as urls:
        opened = [GraphQLHTTP(f"{url}/graphql") for url in urls]
        try:
            yield opened
        finally:
            for client in opened:
                await client.aclose()


async def read_as_fast_as_possible(
    client: GraphQLHTTP, reader: int, name: str, index: dict[str, int], clock: Clock
) -> None:
    try:
        await read_until_done(client, reader, name, index, clock)
    finally:
        clock.polled.set()  # wake a waiter, which then sees this reader stopped


async def read_until_done(
    client: GraphQLHTTP, reader: int, name: str, index: dict[str, int], clock: Clock
) -> None:
    while not clock.done:
        before = clock.answered
        data = await client.data(PRODUCTION, name=name)
        after = clock.answered
        # The `production` alias is the same pointer, read the same way: the same rules hold.
        for answer in (data["productionModelVersion"], data["byAlias"]):
            clock.record(
                Poll(
                    reader,
                    before,
                    after,
                    None if answer is None else index[answer["modelId"]],
                    None if answer is None else answer["status"],
                )
            )


async def test_fifty_deployments_polled_as_fast_as_possible_show_no_gap_and_no_flip(
    clients: list[GraphQLHTTP],
) -> None:
    deployer = clients[0]
    name = f"handover-{uuid.uuid4().hex[:6]}"
    index: dict[str, int] = {}
    for n in range(DEPLOYMENTS + 1):
        registered = await deployer.data(
            REGISTER, input={"modelName": name, "version": f"1.{n}.0", "modelType": "REGRESSION"}
        )
        model_id = registered["registerModelVersion"]["modelId"]
        index[model_id] = n
        await deployer.data(PROMOTE, id=model_id, to="TESTING")
    ids = sorted(index, key=index.__getitem__)
    first = await deployer.data(PROMOTE, id=ids[0], to="PRODUCTION")
    assert first["promoteModelVersion"]["status"] == "PRODUCTION"

    clock = Clock()
    readers = [
        asyncio.create_task(read_as_fast_as_possible(client, n, name, index, clock))
        for n, client in enumerate(clients[n % len(clients)] for n in range(READERS))
    ]
    # Every deployment starts with polls in flight (the readers are running).
    await clock.wait_for_polls(len(readers), readers)
    try:
        for n in range(1, DEPLOYMENTS + 1):
            deployed = await deployer.data(PROMOTE, id=ids[n], to="PRODUCTION")
            assert deployed["promoteModelVersion"]["status"] == "PRODUCTION", deployed
            clock.answered = n
        # A few polls after the last one.
        await clock.wait_for_polls(len(clock.polls) + len(readers), readers)
    finally:
        clock.done = True
        await asyncio.gather(*readers)

    polls = clock.polls
    assert len(polls) >= DEPLOYMENTS, len(polls)
    for p in polls:
        assert p.answer is not None, f"a reader saw no production version: {p}"
        assert p.status == "PRODUCTION", p
        # Deployment k (1-based) moves production from version k-1 to version k.
        assert p.answered_before <= p.answer <= p.answered_after + 1, p
    for reader in range(len(readers)):
        # Each field on its own (the two fields of one request are read concurrently).
        for which in (0, 1):
            seen = [p.answer or 0 for p in polls if p.reader == reader][which::2]
            assert seen == sorted(seen), f"reader {reader} went back: {seen}"
    # Polls in flight while deployment n ran: sent before it was answered, answered after it
    # was sent (right after deployment n - 1 was answered).
    in_flight = [
        sum(1 for p in polls if p.answered_before <= n - 1 <= p.answered_after)
        for n in range(1, DEPLOYMENTS + 1)
    ]
    assert all(count > 0 for count in in_flight), in_flight
    final = [p for p in polls if p.answered_before == DEPLOYMENTS]
    assert final and all(p.answer == DEPLOYMENTS for p in final)
