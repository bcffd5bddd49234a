"""The database refusing, hung or misconfigured, as `mltrain serve` meets it: one clear line at
start, a typed retryable DATABASE_UNAVAILABLE error during an outage (answered while it
lasts, not after), /healthz saying why, and recovery without a restart.

The outage is made by ``tests.db_proxy.DatabaseProxy`` between the server and the database.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pymongo
import pymongo.errors
import pytest

from graphql_api.storage.mongo import MongoStorage, masked
from tests.conftest import REAL_URI
from tests.db_proxy import DatabaseProxy
from tests.live_servers import MLTRAIN, ROOT, ServerLoop, free_port, serving

#: The bound the servers under test run with (MLTRAIN_MONGODB_TIMEOUT): small, so tests are
#: quick; the client waits far longer, so an answer only arrives in time if the bound holds.
BOUND = "0.5"
CLIENT_PATIENCE = 30.0

REGISTER = """mutation($input: RegisterModelVersionInput!) {
  registerModelVersion(input: $input) { ... on ModelVersion { modelId } ... on Error { code } } }"""
CREATE_JOB = """mutation($input: CreateTrainingJobInput!) {
  createTrainingJob(input: $input) {
    __typename ... on TrainingJob { jobId } ... on Error { code } } }"""
JOBS = "{ trainingJobs(first: 5) { totalCount edges { node { jobId } } } }"


@pytest.fixture(scope="module")
def loop() -> Iterator[ServerLoop]:
    background = ServerLoop()
    yield background
    background.close()


@pytest.fixture
def proxy(loop: ServerLoop) -> Iterator[DatabaseProxy]:
    upstream = urlsplit(REAL_URI or "mongodb://127.0.0.1:9")
    database_proxy = DatabaseProxy(upstream.hostname or "127.0.0.1", upstream.port or 27017)
    loop.submit(database_proxy.start()).result()
    yield database_proxy
    loop.submit(database_proxy.close()).result()


def switch(loop: ServerLoop, proxy: DatabaseProxy, mode: str) -> None:
    loop.submit(getattr(proxy, mode)()).result()


def start_serve(uri: str) -> subprocess.CompletedProcess[str]:
    """`mltrain serve` that is expected to stop at start-up; its output."""
    env = {"MLTRAIN_MONGODB_URI": uri, "MLTRAIN_MONGODB_TIMEOUT": BOUND, "PATH": "/usr/bin"}
    return subprocess.run(
        [*MLTRAIN, "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a guard against a hang, not a measurement
        check=False,
    )


def with_password(uri: str) -> str:
    return uri.replace("mongodb://", "mongodb://trainer:s3cr%40t-pw@", 1)


def stops_with_one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "s3cr" not in output, output
    (line,) = [text for text in output.splitlines() if text.startswith("mltrain: cannot start:")]
    for word in words:
        assert word in line, line
    return line


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_start_with_the_database_down_is_one_line_naming_the_masked_uri(
    loop: ServerLoop, proxy: DatabaseProxy, mode: str
) -> None:
    switch(loop, proxy, mode)
    uri = with_password(proxy.uri)
    reason = "connection refused" if mode == "refuse" else f"no server answered within {BOUND}"
    line = stops_with_one_line(start_serve(uri), masked(uri), "trainer:***@", reason)
    assert "MLTRAIN_MONGODB_URI" in line and "MLTRAIN_MONGODB_TIMEOUT" in line


@pytest.mark.parametrize(
    "uri",
    [
        "notmongo://trainer:s3cr%40t-pw@127.0.0.1",
        "mongodb://trainer:s3cr@t-pw@127.0.0.1",  # an unescaped @ in the password
        "mongodb://trainer:s3cr%40t-pw@127.0.0.1:99999",
        "mongodb+srv://trainer:s3cr%40t-pw@127.0.0.1:27017",  # SRV takes no port
        "mongodb://",
        "mongodb://trainer:s3cr%40t-pw@127.0.0.1/?badOption=1",  # PyMongo only warns
        "mongodb://trainer:s3cr%40t-pw@127.0.0.1/?tls=maybe",  # ... and would drop TLS
    ],
)
def test_start_with_an_unusable_uri_is_one_line(uri: str) -> None:
    stops_with_one_line(start_serve(uri), "MLTRAIN_MONGODB_URI is not a usable MongoDB URI")


def test_masking_hides_every_form_of_password() -> None:
    assert masked("mongodb://u:pw@h:1/db") == "mongodb://u:***@h:1/db"
    assert masked("mongodb+srv://u:p@w@h/db?x=1") == "mongodb+srv://u:***@h/db?x=1"
    assert masked("mongodb://u@h") == "mongodb://u@h"
    assert masked("mongodb://h:1") == "mongodb://h:1"


# Needs the real server (behind the proxy) ----------------------------------------------------

needs_real = pytest.mark.skipif(REAL_URI is None, reason="needs MLTRAIN_TEST_MONGODB_URI")


@needs_real
def test_start_with_credentials_the_server_refuses_is_one_line(proxy: DatabaseProxy) -> None:
    uri = with_password(proxy.uri)
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri, timeoutMS=5000)
    try:
        client.admin.command("ping")
        pytest.skip("this server accepts any credentials (authentication off)")
    except pymongo.errors.OperationFailure as refusal:
        assert refusal.code == 18
    finally:
        client.close()
    stops_with_one_line(start_serve(uri), masked(uri), "authentication failed")


def prepared(database: str) -> str:
    """``database`` with its indexes made by a client without the tight bound: the server
    under test then only finds them at start-up (index creation on a fresh database can take
    longer than BOUND on a busy machine, and start-up is not what these tests are about)."""

    async def create_indexes() -> None:
        storage = MongoStorage.connect(REAL_URI, database)
        try:
            await storage.ensure_indexes()
        finally:
            await storage.close()

    asyncio.run(create_indexes())
    return database


def post(url: str, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        timeout=CLIENT_PATIENCE,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def post_until_answered(url: str, query: str, **variables: Any) -> dict[str, Any]:
    """``post``, sent again while it answers DATABASE_UNAVAILABLE (retryable, as a client does,
    docs/retrying.md): with the database up, a busy machine can still take longer than BOUND
    for one operation. Gives up after CLIENT_PATIENCE."""
    deadline = time.monotonic() + CLIENT_PATIENCE
    while True:
        body = post(url, query, **variables)
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
        if codes != ["DATABASE_UNAVAILABLE"] or time.monotonic() > deadline:
            return body


def unavailable(body: dict[str, Any]) -> str:
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE", error
    assert error["extensions"]["retryable"] is True
    assert "retry" in error["message"]
    message: str = error["message"]
    return message


CONCURRENT = 40


async def concurrently(url: str, query: str, count: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=CLIENT_PATIENCE) as http:
        responses = await asyncio.gather(
            *(http.post(f"{url}/graphql", json={"query": query}) for _ in range(count))
        )
    assert all(response.status_code == 200 for response in responses)
    return [response.json() for response in responses]


def health(url: str) -> httpx.Response:
    return httpx.get(f"{url}/healthz", timeout=CLIENT_PATIENCE)


def wait_until_healthy(url: str) -> None:
    """The driver finds the server again by itself (its monitor reconnects): poll for it."""
    deadline = time.monotonic() + CLIENT_PATIENCE
    while health(url).status_code != 200:
        assert time.monotonic() < deadline, "no recovery without a restart"
        time.sleep(0.05)


@needs_real
@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_an_outage_answers_database_unavailable_while_it_lasts_then_recovers(
    loop: ServerLoop, proxy: DatabaseProxy, mode: str
) -> None:
    env = {
        "MLTRAIN_MONGODB_URI": proxy.uri,
        "MLTRAIN_MONGODB_DATABASE": prepared(f"mltrain_outage_{uuid.uuid4().hex[:10]}"),
        "MLTRAIN_MONGODB_TIMEOUT": BOUND,
    }
    with serving(env=env) as (url, log):
        registered = post_until_answered(
            url,
            REGISTER,
            input={"modelName": "churn", "version": "1.0.0", "modelType": "CLASSIFICATION"},
        )
        model_id = registered["data"]["registerModelVersion"]["modelId"]
        job = {"modelId": model_id, "datasetId": "ds-1", "jobId": f"job-{uuid.uuid4().hex[:8]}"}

        switch(loop, proxy, mode)
        # Each answer arrives during the outage (the proxy is still failing): no request
        # stays open for the outage's length.
        unavailable(post(url, JOBS))
        unavailable(post(url, f'{{ trainingJob(jobId: "{job["jobId"]}") {{ status }} }}'))
        message = unavailable(post(url, CREATE_JOB, input=job))
        assert ("connection refused" if mode == "refuse" else f"within {BOUND} s") in message
        # Many at once: more than Motor's driver threads (5 per core), so most calls wait for
        # a thread; each still answers during the outage, as its deadline covers the wait.
        for body in asyncio.run(concurrently(url, JOBS, CONCURRENT)):
            unavailable(body)
        down = health(url)
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        assert down.json()["reason"].startswith("database unavailable: ")
        assert proxy.mode == mode

        switch(loop, proxy, "restore")
        wait_until_healthy(url)
        # Recovery without a restart; retrying the create with its id is safe: it is created
        # once, or a ConflictError says an earlier attempt landed.
        retried = post_until_answered(url, CREATE_JOB, input=job)["data"]["createTrainingJob"]
        assert retried in (
            {"__typename": "TrainingJob", "jobId": job["jobId"]},
            {"__typename": "ConflictError", "code": "CONFLICT"},
        )
        again = post_until_answered(url, CREATE_JOB, input=job)["data"]["createTrainingJob"]
        assert again == {"__typename": "ConflictError", "code": "CONFLICT"}
        assert post_until_answered(url, JOBS)["data"]["trainingJobs"]["totalCount"] == 1
    text = log.read_text()
    assert "Unexpected error" not in text and "unexpected error" not in text
    assert "database unavailable in trainingJobs" in text
