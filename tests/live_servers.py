"""Real servers and real WebSocket clients for the subscription tests.

``ServerLoop`` runs uvicorn servers on loopback ports in a background thread with an event loop
of its own, so the tests' clients talk to them over real sockets, as any client would.
``serving`` runs ``mltrain serve`` as a separate process, the way a user starts it.
``WSClient`` speaks either subscription protocol (graphql-transport-ws or the legacy
graphql-ws) over a ``websockets`` connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from graphql_api.app import create_app
from graphql_api.live.feed import ChangeFeed
from graphql_api.settings import Settings
from graphql_api.storage.base import Storage
from graphql_api.ws_protocol import LeanWebSocketsProtocol

T = TypeVar("T")

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class Server:
    """One running app: its URLs, and its feed (read it only through ``ServerLoop.call``)."""

    def __init__(self, uvicorn_server: uvicorn.Server, app: Any, port: int) -> None:
        self.uvicorn = uvicorn_server
        self.app = app
        self.port = port
        self.http_url = f"http://127.0.0.1:{port}/graphql"
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"

    @property
    def feed(self) -> ChangeFeed:
        feed: ChangeFeed = self.app.state.feed
        return feed


class ServerLoop:
    """A background thread whose event loop runs servers (and their storage)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[tuple[Server, asyncio.Future[None]]] = []

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the servers' loop and await its result from the test's loop."""
        return await asyncio.wrap_future(self.submit(coro))

    async def peek(self, read: Callable[[], T]) -> T:
        """Evaluate ``read`` on the servers' loop (their objects are not thread-safe)."""

        async def run() -> T:
            return read()

        return await self.call(run())

    async def start(
        self, settings: Settings, storage: Storage, send_buffer: int | None = None
    ) -> Server:
        """Serve an app on a free loopback port. ``send_buffer`` fixes the kernel send buffer
        of its connections (they inherit it from the listening socket), which otherwise grows
        to megabytes on loopback: a test of a stalled client needs the server to notice."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = create_app(settings, storage=storage)
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            ws_ping_interval=None,
            ws=LeanWebSocketsProtocol,  # as `mltrain serve`
            # As `mltrain serve` (off unless configured): uvicorn's own default is on, which
            # had every test connection compressed and so never framed by direct delivery.
            ws_per_message_deflate=settings.ws_per_message_deflate,
        )
        server = Server(uvicorn.Server(config), app, port)

        async def serve() -> None:
            await server.uvicorn.serve(sockets=[sock])

        running = asyncio.wrap_future(self.submit(serve()))
        deadline = time.monotonic() + 10
        while not server.uvicorn.started:
            if running.done():
                running.result()  # raises the start-up error
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            await asyncio.sleep(0.01)
        self._servers.append((server, running))
        return server

    async def stop(self, server: Server) -> None:
        for entry in list(self._servers):
            if entry[0] is server:
                self._servers.remove(entry)
                server.uvicorn.should_exit = True
                await entry[1]

    async def stop_all(self) -> None:
        for server, _ in list(self._servers):
            await self.stop(server)

    def close(self) -> None:
        """Stop the thread's loop and close it: a loop left open is reported as a
        ResourceWarning when it is garbage-collected, in whichever later test that happens."""
        self.submit(self.loop.shutdown_asyncgens()).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("the servers' event loop did not stop")
        self.loop.close()


#: The storage operation bound (MLTRAIN_MONGODB_TIMEOUT) of every server and storage the
#: suite opens on the real test server, unless a test sets its own. The default, 2.5 s, is
#: for production; on CI's two cores, shared by two test processes, their server processes,
#: PostgreSQL and FerretDB, an operation went past it in one of about 15 full runs (a
#: registration among ten concurrent ones), was answered DATABASE_UNAVAILABLE as designed, and
#: failed a test about something else. Tests of the bound itself set theirs
#: (test_transport_database, test_socket_io) through a proxy that withholds answers.
REAL_SERVER_TIMEOUT = 10.0

#: How long a live test waits, by default, for something it expects (a condition, a message):
#: a passing test waits only as long as that takes. Above REAL_SERVER_TIMEOUT, so an answer
#: the loaded CI machine's database gives late, but within its bound, still counts.
PATIENCE = 15.0


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = PATIENCE, what: str = "condition"
) -> None:
    """Wait until ``check()`` holds (polling), failing after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


class GraphQLHTTP:
    """Mutations and queries over real HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.AsyncClient(timeout=2 * PATIENCE)

    async def data(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.client.post(self.url, json={"query": query, "variables": variables})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def aclose(self) -> None:
        await self.client.aclose()


class SubscriptionEnded(Exception):
    """The server ended the subscription with errors (carried in ``errors``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else "ended")
        self.errors = errors


class WSClient:
    """A GraphQL-over-WebSocket client for either protocol; one reader routes messages."""

    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._ids = itertools.count(1)
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.pings = 0
        self.keep_alives = 0
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        protocol: str = TRANSPORT_WS,
        *,
        origin: str | None = None,
        read: bool = True,
        sock: socket.socket | None = None,
        **options: Any,
    ) -> WSClient:
        ws = await connect(
            url,
            subprotocols=[Subprotocol(protocol)],
            origin=None if origin is None else Origin(origin),
            sock=sock,
            open_timeout=5,
            **options,
        )
        client = cls(ws, protocol)
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if message["type"] == "connection_ack":
                break
        if read:
            client.start_reading()
        return client

    def start_reading(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = json.loads(raw)
                kind = message["type"]
                if kind == "ping":
                    self.pings += 1
                    await self.ws.send(json.dumps({"type": "pong"}))
                elif kind == "ka":
                    self.keep_alives += 1
                elif "id" in message:
                    self._queue(message["id"]).put_nowait(message)

    def _queue(self, op_id: str) -> asyncio.Queue[dict[str, Any]]:
        return self._queues.setdefault(op_id, asyncio.Queue())

    async def subscribe(self, query: str, **variables: Any) -> str:
        op_id = str(next(self._ids))
        self._queue(op_id)
        start = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": op_id, "type": start, "payload": payload}))
        return op_id

    async def unsubscribe(self, op_id: str) -> None:
        stop = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.ws.send(json.dumps({"id": op_id, "type": stop}))

    async def next_message(self, op_id: str, within: float = PATIENCE) -> dict[str, Any]:
        """The next protocol message for ``op_id``, as sent (type and payload)."""
        return await asyncio.wait_for(self._queue(op_id).get(), within)

    async def next(self, op_id: str, within: float = PATIENCE) -> dict[str, Any]:
        """The next result's ``data``; SubscriptionEnded if it came with errors instead."""
        message = await self.next_message(op_id, within)
        kind = message["type"]
        if kind in ("next", "data"):
            payload = message["payload"]
            if payload.get("errors"):
                raise SubscriptionEnded(payload["errors"])
            data: dict[str, Any] = payload["data"]
            return data
        if kind == "error":
            errors = message["payload"]
            raise SubscriptionEnded(errors if isinstance(errors, list) else [errors])
        raise SubscriptionEnded([{"message": f"subscription ended ({kind})"}])

    async def take(self, op_id: str, count: int, within: float = PATIENCE) -> list[dict[str, Any]]:
        return [await self.next(op_id, within) for _ in range(count)]

    async def nothing_more(self, op_id: str, wait: float = 0.3) -> bool:
        """True if no message arrives for ``op_id`` within ``wait`` seconds."""
        try:
            await asyncio.wait_for(self._queue(op_id).get(), wait)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


# `mltrain serve` as a process ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
MLTRAIN = [sys.executable, "-m", "graphql_api.cli"]


#: Under pytest-xdist (``-n``), each worker hands out ports from a block of its own below
#: the kernel's ephemeral range (32768+, where ``bind(0)`` and outgoing connections take
#: theirs): between ``free_port`` and the server process's own bind, no other worker of the
#: run can pick the same port. Alone (no xdist), the kernel picks one.
WORKER_PORTS = 1000


def _worker_ports() -> Iterator[int] | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    if not worker.startswith("gw"):
        return None
    first = 20000 + int(worker[2:]) * WORKER_PORTS
    return itertools.cycle(range(first, first + WORKER_PORTS)) if first < 32768 else None


_next_ports = _worker_ports()


def free_port() -> int:
    """A loopback port nothing listens on, for a server process to bind."""
    for _ in range(WORKER_PORTS if _next_ports is not None else 1):
        with socket.socket() as sock:
            port = 0 if _next_ports is None else next(_next_ports)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # another program's (a fixed-port server, another run)
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port in this worker's block")


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Path]]:
    """A ``mltrain serve`` process with ``args`` and ``env`` (over no other MLTRAIN_ setting),
    once it answers /healthz: its URL and its log."""
    with serving_process(*args, env=env) as (url, _, log):
        yield url, log


@contextmanager
def serving_process(
    *args: str, env: dict[str, str] | None = None, start_within: float = 30
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``serving``, with the process too, for tests that kill it; stopped at the end unless
    it already ended."""
    port = free_port()
    log = ROOT / ".pytest_cache" / f"serve-{port}.log"
    log.parent.mkdir(exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    environment.update(env or {})
    uri = environment.get("MLTRAIN_MONGODB_URI")
    if uri is not None and uri == os.environ.get("MLTRAIN_TEST_MONGODB_URI"):
        environment.setdefault("MLTRAIN_MONGODB_TIMEOUT", str(REAL_SERVER_TIMEOUT))
    with log.open("w") as out:
        process = subprocess.Popen(
            [*MLTRAIN, "serve", "--port", str(port), *args],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_within
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url, process, log
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
