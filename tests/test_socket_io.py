"""A storage call's send and receive on PyMongo's async client (storage/mongo/socket_io.py):
no asyncio task per socket operation, and still a bounded wait for an answer that never
comes, on the real server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any
from urllib.parse import urlsplit

import pymongo
import pytest

from graphql_api.storage.base import DatabaseUnavailable
from graphql_api.storage.mongo import MongoStorage, socket_io
from tests.conftest import REAL_URI
from tests.db_proxy import DatabaseProxy

needs_real = pytest.mark.skipif(REAL_URI is None, reason="needs MLTRAIN_TEST_MONGODB_URI")

#: The storage's bound in the hung-server test: small, so the test is quick.
BOUND = 0.5


def test_the_installed_pymongo_is_one_whose_socket_functions_were_checked() -> None:
    """An upgrade of PyMongo keeps its own (slower) functions until socket_io.py is read
    against it again: this test says when that is due."""
    assert tuple(pymongo.version_tuple[:2]) in socket_io.TESTED
    MongoStorage.connect("mongodb://127.0.0.1:9", "mltrain_unused")  # connecting installs
    assert socket_io.installed()


class TaskCount:
    """Counts the tasks the running loop creates while installed."""

    def __init__(self) -> None:
        self.created = 0

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        **kwargs: Any,
    ) -> asyncio.Task[Any]:
        self.created += 1
        return asyncio.Task(coro, loop=loop, **kwargs)


@needs_real
async def test_storage_calls_create_no_task_per_socket_operation() -> None:
    """PyMongo's own functions made three tasks per command (the write under ``wait_for``,
    the read, and a poll for the pool's interruption): 30 reads made 90 or more."""
    assert REAL_URI is not None
    store = MongoStorage.connect(REAL_URI, f"mltrain_socket_io_{uuid.uuid4().hex[:10]}")
    try:
        await store.ping()  # connected (its monitors' tasks are started) before counting
        for _ in range(3):
            await store.training_jobs.get("warm-up")
        loop = asyncio.get_running_loop()
        count = TaskCount()
        loop.set_task_factory(count)
        try:
            for n in range(30):
                assert await store.training_jobs.get(f"job-{n}") is None
        finally:
            loop.set_task_factory(None)
        # The monitors' own checks may run meanwhile (one task each at most).
        assert count.created <= 3, f"{count.created} tasks for 30 reads"
    finally:
        await store.database.client.drop_database(store.database.name)
        await store.close()


@needs_real
async def test_a_connection_stays_in_the_selector_between_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PyMongo's protocol took its socket out of the event loop's selector after each reply
    and put it back with the next command (an ``epoll_ctl`` each way): 30 reads did 30 of
    each. Its connections carry one command at a time, so it now stays in."""
    assert REAL_URI is not None
    store = MongoStorage.connect(REAL_URI, f"mltrain_socket_io_{uuid.uuid4().hex[:10]}")
    try:
        for _ in range(3):
            await store.training_jobs.get("warm-up")
        loop = asyncio.get_running_loop()
        changes = {"added": 0, "removed": 0}
        add_reader, remove_reader = loop._add_reader, loop._remove_reader  # type: ignore[attr-defined]  # the selector loop's own

        def counted_add(*args: Any) -> Any:
            changes["added"] += 1
            return add_reader(*args)

        def counted_remove(fd: int) -> bool:
            changes["removed"] += 1
            return bool(remove_reader(fd))

        monkeypatch.setattr(loop, "_add_reader", counted_add)
        monkeypatch.setattr(loop, "_remove_reader", counted_remove)
        for n in range(30):
            assert await store.training_jobs.get(f"job-{n}") is None
        monkeypatch.undo()
        # The monitors' own checks may open or close a connection meanwhile.
        assert changes["added"] <= 2 and changes["removed"] <= 2, changes
    finally:
        await store.database.client.drop_database(store.database.name)
        await store.close()


@pytest.fixture
async def proxy() -> AsyncIterator[DatabaseProxy]:
    assert REAL_URI is not None
    upstream = urlsplit(REAL_URI)
    database_proxy = DatabaseProxy(upstream.hostname or "127.0.0.1", upstream.port or 27017)
    await database_proxy.start()
    yield database_proxy
    await database_proxy.close()


@needs_real
async def test_an_answer_that_never_comes_ends_at_the_drivers_deadline(
    proxy: DatabaseProxy,
) -> None:
    """A server that takes the command and never answers (the proxy black-holes a pooled
    connection): the call fails as DatabaseUnavailable within the storage's bound, at the
    driver's deadline (its time-out, not the loop's backstop a second later), and the next
    call after the server is back succeeds on a new connection."""
    store = MongoStorage.connect(
        proxy.uri, f"mltrain_socket_io_{uuid.uuid4().hex[:10]}", timeout=BOUND
    )
    try:
        assert await store.training_jobs.get("before") is None  # a pooled connection
        await proxy.blackhole()
        with pytest.raises(DatabaseUnavailable) as raised:
            await store.training_jobs.get("during")
        assert raised.value.reason == f"no answer within {BOUND:g} s"
        assert "deadline passed" not in raised.value.detail  # the driver's, not the backstop
        assert "timed out" in raised.value.detail
        assert proxy.dropped > 0  # the command was sent, and never answered
        await proxy.restore()
        assert await store.training_jobs.get("after") is None
    finally:
        await proxy.restore()
        await store.database.client.drop_database(store.database.name)
        await store.close()
