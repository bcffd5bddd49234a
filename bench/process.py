"""The project's server as the benchmarks run it: pinned to one core, in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
UVICORN = PROJECT / ".venv" / "bin" / "uvicorn"
#: The event loop and HTTP parser a production server runs with.
FAST = ["--loop", "uvloop", "--http", "httptools"]


def uvicorn_command(app_dir: Path | str, port: int, flags: list[str] = FAST) -> list[str]:
    """The command that serves ``bench.server:create_app`` from ``app_dir`` on 127.0.0.1:PORT
    in one worker, quietly (also the peers' harness's, bench/targets.py)."""
    return [
        str(UVICORN),
        "--app-dir",
        str(app_dir),
        "--factory",
        "bench.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        *flags,
    ]


def start_server(
    env: dict[str, str], port: int, cpu: str, timeout: float = 300, app_dir: Path = PROJECT
) -> subprocess.Popen[bytes]:
    """``bench.server:create_app`` under uvicorn (uvloop, httptools) on ``cpu``, once it answers.

    ``app_dir``: the project tree whose code the server runs (another checkout, e.g. a
    ``git worktree`` of the commit before a change; it is first on the server's path).

    The bench app seeds its database in the lifespan, before it serves, so an answer means the
    data is there.
    """
    cmd = ["taskset", "-c", cpu, *uvicorn_command(app_dir, port)]
    server = subprocess.Popen(cmd, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/graphql",
                data=b'{"query": "{ __typename }"}',
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=5).read()
            return server
        except OSError:
            time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"the server on port {port} did not answer within {timeout:.0f} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: TERM, then KILL if it lingers."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=5)
