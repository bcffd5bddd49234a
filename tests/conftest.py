"""Fixtures: the app over each storage backend, and a GraphQL client speaking HTTP to it.

Every API test runs against the in-memory mock. When ``MLTRAIN_TEST_MONGODB_URI`` is set (CI
sets it to a real MongoDB-wire server), each also runs against that server, in a database of
its own that is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pymongo
import pytest
from asgi_lifespan import LifespanManager
from pymongo.errors import OperationFailure

from graphql_api.app import create_app
from graphql_api.services.container import Services
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo.collection import retry_transient
from tests.live_servers import REAL_SERVER_TIMEOUT, ServerLoop

REAL_URI = os.environ.get("MLTRAIN_TEST_MONGODB_URI")
BACKENDS = ["mock", *(["real"] if REAL_URI else [])]

#: Why the coverage floor is not checked on this run (None: it is, when --cov is on).
FLOOR_SKIPPED = "MLTRAIN_TEST_MONGODB_URI is not set" if REAL_URI is None else None


def pytest_configure(config: pytest.Config) -> None:
    """The coverage floor (pyproject's ``fail_under``) is the figure of the suite on both
    backends: a mock-only run leaves the real server's code paths out and falls under it, so
    it is measured and reported but not held to the floor (README "Quickstart" and .ci/run
    run the same command; CI sets the real server)."""
    coverage = config.pluginmanager.get_plugin("_cov")  # pytest-cov, when --cov is given
    if coverage is not None and FLOOR_SKIPPED is not None:
        coverage.options.cov_fail_under = 0  # 0, not None: None reloads it from pyproject
    if REAL_URI is not None:
        ignore_sockets_the_driver_leaves_on_cancel(config, REAL_URI)


def ignore_sockets_the_driver_leaves_on_cancel(config: pytest.Config, uri: str) -> None:
    """PyMongo 4.20's async client leaves a socket to the database unclosed when a cancel
    lands while it is connecting (it closes one only on a timeout or an OS error), and the
    garbage collector's ResourceWarning then fails whichever test is running (once in a full
    CI run, in a crash scenario of test_outbox_faults; docs/real-server.md, "The driver").
    Only that warning, for sockets to the test database server, is ignored (a line after
    pyproject's ``error``, so it takes precedence), and unclosed socket transports (below);
    every other ResourceWarning stays an error."""
    port = uri.rsplit(":", 1)[-1].split("/", 1)[0]
    config.addinivalue_line(
        "filterwarnings",
        rf"ignore:unclosed <socket\.socket [^>]*raddr=\('127\.0\.0\.1', {port}\)>:ResourceWarning",
    )
    # Seen once in three full runs on 2026-12-02: an unclosed socket transport, most likely
    # the same cancel landing a step later (PyMongo's handshake after connecting, its close
    # left to a loop the test has closed; not pinned down). Its warning names no address, so
    # with a real server every unclosed socket transport is ignored; runs without one (the
    # mock only) keep them errors.
    config.addinivalue_line(
        "filterwarnings",
        r"ignore:unclosed transport <_SelectorSocketTransport fd=\d+>:ResourceWarning",
    )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if config.pluginmanager.get_plugin("_cov") is not None and FLOOR_SKIPPED is not None:
        terminalreporter.write_line(
            f"coverage floor not checked: {FLOOR_SKIPPED} (the floor is for mock + real server)"
        )


#: This test process's database on the real server: made with its indexes by the first test
#: that asks, emptied (and its indexes put back) before each test, dropped when the session
#: ends. A database per test cost about 0.5 s of PostgreSQL DDL on DocumentDB (its indexes,
#: then the drop), minutes of CI over a thousand tests; emptying one costs a few round trips.
_real_database: str | None = None


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[MongoStorage]:
    if request.param == "real":
        store = MongoStorage.connect(REAL_URI, real_test_database(), timeout=REAL_SERVER_TIMEOUT)
    else:
        store = MongoStorage.connect(None, f"mltrain_test_{uuid.uuid4().hex[:12]}")
    try:
        if request.param == "real":
            await empty_database(store)
        try:
            # Puts back what a test dropped (an index, a collection); learns the server.
            await store.ensure_indexes()
        except OperationFailure:
            if request.param != "real":
                raise
            # An earlier test left an index the start-up refuses (one of another key under
            # a name it uses): this test gets the fresh database a start-up expects.
            await drop_test_database(store, store.database.name)
            await store.ensure_indexes()
        yield store
    finally:
        # Closed however set-up or tear-down ended: a client left to the garbage collector
        # warns (an error under -W error) in whichever later test happens to collect it.
        await store.close()


def real_test_database() -> str:
    global _real_database
    if _real_database is None:
        _real_database = f"mltrain_test_{uuid.uuid4().hex[:12]}"
    return _real_database


async def empty_database(store: MongoStorage) -> None:
    """Every document of every collection deleted: what a test finds is what a fresh
    database holds, with the collections and indexes kept."""
    database = store.database
    for name in await database.list_collection_names():
        collection = database[name]

        async def empty(collection: Any = collection) -> None:
            await collection.delete_many({})

        await retry_transient(empty, f"emptying {name}")


async def drop_test_database(store: MongoStorage, name: str) -> None:
    """For a test's own database: dropped like indexes are made, retried while DocumentDB's
    DDL deadlocks with another test process's."""

    async def drop() -> None:
        await store.database.client.drop_database(name)

    await retry_transient(drop, f"dropping {name}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _real_database is not None and REAL_URI is not None:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(REAL_URI)
        with client:
            client.drop_database(_real_database)


@pytest.fixture(scope="module")
def server_loop() -> Iterator[ServerLoop]:
    """A background event loop for the module's real uvicorn servers (tests/live_servers.py)."""
    loop = ServerLoop()
    yield loop
    loop.close()


@pytest.fixture
def services(storage: MongoStorage) -> Services:
    return Services.over(storage)


class GraphQLClient:
    """Posts operations to /graphql the way a browser or a worker does."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        """The full response body; fails the test on a non-200 status."""
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, **variables: Any) -> dict[str, Any]:
        """The ``data`` of an operation that must not error."""
        body = await self.execute(query, **variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
async def app(storage: MongoStorage) -> AsyncIterator[Any]:
    # httpx's ASGI client sends Host: testserver; open mode answers only listed names.
    application = create_app(Settings(graphiql=True, allowed_hosts=["testserver"]), storage=storage)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)
