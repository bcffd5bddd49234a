"""How the Python client reads the server's HTTP answers (README "Train with mltrain"): the
endpoint's own address works as the server's; a URL that answers no GraphQL (a 404 page)
is a clear ``NOT_GRAPHQL`` error at once instead of a JSON decoding traceback; a rate-limited
key (HTTP 429) waits the ``Retry-After`` and sends again, so a run's points and its end are
not lost to a limit (before, the 429's points were dropped as "refused" and the job's
completion raised). Sync client against real ``mltrain serve`` processes, the async one
through the app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from mltrain import AsyncClient, Client, MltrainError
from tests.conftest import REAL_URI
from tests.live_servers import free_port, serving
from tests.test_workers_cli import serve_on
from tests.test_workers_client import create_job, read
from tests.test_workers_e2e import wait_for


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving() as (url, _log):
        yield url


def test_the_endpoints_own_address_is_the_servers(server: str) -> None:
    with Client(server + "/graphql/") as client:
        assert client.url == server + "/graphql"
        assert client.claim(f"empty-{uuid.uuid4().hex[:8]}") is None


def test_a_url_that_answers_no_graphql_is_refused_at_once(server: str) -> None:
    with Client(server + "/api", retry_for=60) as client, pytest.raises(MltrainError) as refused:
        client.claim("default")
    assert refused.value.code == "NOT_GRAPHQL"
    assert str(refused.value) == (
        f"NOT_GRAPHQL: {server}/api/graphql answered HTTP 404 Not Found, not a GraphQL "
        "response: is the URL the mltrain server's (http://host:8000)?"
    )


def test_a_rate_limited_run_loses_no_point_and_still_ends(tmp_path: Any) -> None:
    # Two requests a second: a run's heartbeats, sends and end all meet HTTP 429 on the way.
    limits = {"MLTRAIN_RATE_LIMIT_REQUESTS": "2", "MLTRAIN_RATE_LIMIT_REQUEST_BURST": "2"}
    with serving(env=limits) as (url, _log), Client(url) as client:
        queue = f"limited-{uuid.uuid4().hex[:8]}"
        job_id = create_job(client, queue)
        job = client.claim(queue, lease_seconds=3)
        assert job is not None
        with client.run(job, flush_interval=0.05) as run:
            for step in range(30):
                run.log(step, loss=1 / (step + 1))
                run.flush()  # a send per step: most of them are rate limited
        done = read(client, job_id)
    assert done["status"] == "COMPLETED", done
    assert done["metricSeries"] == [
        {"key": "loss", "totalPoints": 30, "firstStep": 0, "lastStep": 29}
    ]


async def test_the_async_client_waits_out_a_rate_limit_and_reads_the_endpoint() -> None:
    answers = [
        httpx.Response(429, headers={"retry-after": "0"}, json={"errors": [
            {"message": "Rate limit exceeded", "extensions": {"code": "RATE_LIMITED"}}]}),
        httpx.Response(503, text="restarting"),
        httpx.Response(200, json={"data": {"claimTrainingJob": None}}),
    ]  # fmt: skip
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return answers.pop(0)

    client = AsyncClient("http://mltrain.test/graphql", transport=httpx.MockTransport(answer))
    try:
        assert await client.claim("default") is None
    finally:
        await client.aclose()
    assert seen == ["http://mltrain.test/graphql"] * 3


@pytest.mark.skipif(not REAL_URI, reason="needs a database that outlives the server")
def test_a_run_loses_no_point_while_its_server_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops mid-run and comes back on the same address (the same database): the
    points logged meanwhile, whose sends failed for want of the server, are sent once it is
    back, and the run still completes its job."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MLTRAIN_MONGODB_URI": str(REAL_URI), "MLTRAIN_MONGODB_DATABASE": f"r_{port}"}
    log = tmp_path / "serve.log"
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    # Calls give up after a second: sends fail while the server is away, their points stay.
    with Client(url, retry_for=1) as client, ExitStack() as server:
        server.enter_context(serve_on(port, env, log))
        job_id = create_job(client, queue)
        job = client.claim(queue, lease_seconds=30)
        assert job is not None
        failed: list[str] = []
        report = client.report_points

        def observed(*args: Any) -> None:
            try:
                report(*args)
            except MltrainError as error:
                failed.append(error.code)
                raise

        monkeypatch.setattr(client, "report_points", observed)
        with client.run(job, flush_interval=0.05) as run:
            for step in range(50):
                run.log(step, loss=1 / (step + 1))
            wait_for(lambda: run.unsent == 0, "the first points sent")
            server.close()  # the server stops
            for step in range(50, 100):
                run.log(step, loss=1 / (step + 1))
            wait_for(lambda: "UNAVAILABLE" in failed, "a send to fail for want of the server")
            assert run.unsent == 50
            server.enter_context(serve_on(port, env, log))
        done = read(client, job_id)
    assert done["status"] == "COMPLETED", done
    assert done["metricSeries"] == [
        {"key": "loss", "totalPoints": 100, "firstStep": 0, "lastStep": 99}
    ]
