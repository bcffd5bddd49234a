"""`mltrain serve` processes on one database, started and waited for, for the multi-instance
benches (``bench.cross_instance``, ``bench.key_propagation``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from bench.subscriptions import PROJECT, free_port


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    url: str


@contextlib.contextmanager
def serve(uri: str, database: str, count: int, **env: str) -> Iterator[list[Server]]:
    """``count`` servers on ``uri``'s ``database`` (``env`` added to their environment), each
    answering /healthz before this yields (60 s each at most); terminated on exit."""
    servers: list[Server] = []
    try:
        for _ in range(count):
            port = free_port()
            environment = {
                **os.environ,
                "MLTRAIN_PORT": str(port),
                "MLTRAIN_LOG_LEVEL": "warning",
                "MLTRAIN_MONGODB_URI": uri,
                "MLTRAIN_MONGODB_DATABASE": database,
                **env,
            }
            process = subprocess.Popen(
                [sys.executable, "-m", "graphql_api.cli", "serve"],
                env=environment,
                cwd=PROJECT,
                stdout=subprocess.DEVNULL,
            )
            servers.append(Server(process, f"http://127.0.0.1:{port}"))
        for server in servers:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{server.url} did not start")
                time.sleep(0.1)
        yield servers
    finally:
        for server in servers:
            server.process.terminate()
            server.process.wait(timeout=30)
