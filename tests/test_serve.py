"""`mltrain serve` as a user runs it: a real process, real HTTP, the quickstart's promises."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import REAL_URI

ROOT = Path(__file__).resolve().parent.parent
MLTRAIN = [sys.executable, "-m", "graphql_api.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = ROOT / ".pytest_cache" / f"serve-{port}.log"
    log.parent.mkdir(exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    environment.update(env or {})
    with log.open("w") as out:
        process = subprocess.Popen(
            [*MLTRAIN, "serve", "--port", str(port), *args],
            cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=10)


def query(url: str, document: str) -> dict[str, object]:
    response = httpx.post(f"{url}/graphql", json={"query": document}, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[return-value]


STATUSES = "{ trainingJobs(first: 100) { edges { node { status } } } }"


def test_serve_demo_in_memory_warns_and_shows_every_status() -> None:
    with serving("--demo") as (url, log):
        data = query(url, STATUSES)
        page = httpx.get(f"{url}/graphql", headers={"accept": "text/html"}, timeout=5)
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        production = query(url, '{ productionModelVersion(modelName: "churn-predictor") '
                                "{ version status } }")
    statuses = {e["node"]["status"] for e in data["trainingJobs"]["edges"]}  # type: ignore[index]
    assert statuses == {"PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"}
    assert production == {"productionModelVersion": {"version": "1.1.0", "status": "PRODUCTION"}}
    assert "DATA IS NOT KEPT" in log.read_text()


@pytest.mark.skipif(REAL_URI is None, reason="needs MLTRAIN_TEST_MONGODB_URI (a real server)")
def test_serve_on_a_real_server_keeps_data_across_restarts() -> None:
    assert REAL_URI is not None
    env = {"MLTRAIN_MONGODB_URI": REAL_URI,
           "MLTRAIN_MONGODB_DATABASE": f"mltrain_serve_{uuid.uuid4().hex[:10]}"}
    with serving("--demo", env=env) as (url, log):
        first = query(url, STATUSES)
        assert "DATA IS NOT KEPT" not in log.read_text()
    with serving("--demo", env=env) as (url, log):
        again = query(url, STATUSES)
        assert "database not empty, nothing seeded" in log.read_text()
    assert again == first and len(first["trainingJobs"]["edges"]) == 35  # type: ignore[index]
