"""The Python client (issue 15 item 7): a job claimed, run, logged, completed; an exception
fails it with its kind; a graceful cancel is seen and acknowledged; a lost lease stops the run.
The sync client against a real ``mltrain serve`` process, the async one through the app."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mltrain import AsyncClient, ClaimedJob, Client, FailureKind, LeaseLost, failure_kind_of
from tests.conftest import GraphQLClient
from tests.live_servers import ROOT, serving
from tests.operations import CANCEL_GRACEFULLY, CREATE_JOB, REGISTER

READ = """query($id: ID!) { trainingJob(jobId: $id) { status metrics workerId
  metricSeries { key totalPoints firstStep lastStep }
  failure { kind message } history(first: 50) { edges { node { kind } } } } }"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving() as (url, _log):
        yield url


def create_job(client: Client, queue: str, **fields: Any) -> str:
    model = client.execute(
        REGISTER, input={"modelName": queue, "version": "1.0.0", "modelType": "REGRESSION"}
    )
    model_id = model["data"]["registerModelVersion"]["modelId"]
    created = client.execute(
        CREATE_JOB,
        input={
            "modelId": model_id,
            "datasetId": "d",
            "queue": queue,
            "hyperparameters": {"lr": 1},
            **fields,
        },
    )
    return str(created["data"]["createTrainingJob"]["jobId"])


def read(client: Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.execute(READ, id=job_id)["data"]["trainingJob"]
    return job


def test_a_clean_run_logs_its_steps_and_completes(server: str) -> None:
    with Client(server, worker_id="laptop-1") as client:
        job_id = create_job(client, "clean")
        assert client.claim("empty-queue") is None
        job = client.claim("clean", lease_seconds=3)
        assert job is not None and job.job_id == job_id and job.hyperparameters == {"lr": 1}
        with client.run(job, flush_interval=0.05) as run:
            for step in range(100):
                run.log(step, loss=1 / (step + 1), acc=step / 100)
        done = read(client, job_id)
        assert done["status"] == "COMPLETED" and done["workerId"] == "laptop-1"
        assert done["metrics"] == {"loss": 0.01, "acc": 0.99}
        # Every step is stored, as a per-step series (reportTrainingMetrics(series:)).
        assert done["metricSeries"] == [
            {"key": key, "totalPoints": 100, "firstStep": 0, "lastStep": 99}
            for key in ("acc", "loss")
        ]


@pytest.mark.parametrize(
    ("error", "kind"),
    [(ValueError("bad batch"), "USER_CODE"), (MemoryError("CUDA"), "OUT_OF_MEMORY")],
)
def test_an_exception_fails_the_job_with_its_kind_and_goes_on(
    server: str, error: Exception, kind: str
) -> None:
    with Client(server) as client:
        queue = f"fail-{kind.lower().replace('_', '-')}"
        job_id = create_job(client, queue)
        job = client.claim(queue)
        assert job is not None
        with pytest.raises(type(error)), client.run(job) as run:
            run.log(0, loss=2.0)
            raise error
        failed = read(client, job_id)
        assert failed["status"] == "FAILED" and failed["failure"]["kind"] == kind
        assert str(error) in failed["failure"]["message"]


def test_a_graceful_cancel_is_seen_and_acknowledged(server: str) -> None:
    with Client(server) as client:
        job_id = create_job(client, "cancel")
        job = client.claim("cancel", lease_seconds=1)
        assert job is not None
        with client.run(job, flush_interval=0.05) as run:
            client.execute(CANCEL_GRACEFULLY, id=job_id, grace=60)
            step = 0
            while not run.cancel_requested:  # seen at the next heartbeat (a third of 1 s)
                run.log(step, loss=1.0)
                step += 1
                assert step < 10_000_000
        job_now = read(client, job_id)
        assert job_now["status"] == "CANCELLED"
        assert [e["node"]["kind"] for e in job_now["history"]["edges"]][-1] == (
            "CANCEL_ACKNOWLEDGED"
        )


def test_the_failure_kinds_of_exceptions() -> None:
    assert failure_kind_of(MemoryError()) is FailureKind.OUT_OF_MEMORY
    assert failure_kind_of(ConnectionResetError()) is FailureKind.INFRASTRUCTURE
    assert failure_kind_of(KeyboardInterrupt()) is FailureKind.PREEMPTED
    assert failure_kind_of(RuntimeError()) is FailureKind.USER_CODE


async def test_the_async_client_claims_reports_and_is_fenced(gql: GraphQLClient, app: Any) -> None:
    model = await gql.data(
        REGISTER, input={"modelName": "a", "version": "1.0.0", "modelType": "REGRESSION"}
    )
    await gql.data(
        CREATE_JOB,
        input={"modelId": model["registerModelVersion"]["modelId"], "datasetId": "d"},
    )
    client = AsyncClient(
        "http://localhost", worker_id="async-1", transport=httpx.ASGITransport(app=app)
    )
    try:
        job = await client.claim()
        assert job is not None
        assert await client.heartbeat(job) is False
        await client.report(job, {"loss": 0.5})
        await client.complete(job)
        with pytest.raises(LeaseLost):
            await client.report(ClaimedJob(job.job_id, "default", {}, "stale", 60), {"x": 1})
    finally:
        await client.aclose()


#: Training code as a user writes it, with two mistakes their type checker must catch.
USER_CODE = """
from mltrain import Client

with Client("http://mltrain:8000") as client:
    job = client.claim("gpu")
    if job is not None:
        with client.run(job) as run:
            run.log("first", loss=0.5)
            print(run.cancel_requestd)
"""


def test_the_installed_client_is_typed_for_its_users(tmp_path: Path) -> None:
    """A user's type checker (and editor) sees the client's types once it is installed (PEP
    561: a py.typed marker); without it, every ``mltrain`` name is Any to them and both
    mistakes below pass unnoticed."""
    environment = tmp_path / "env"
    venv.create(environment, with_pip=False)
    (site,) = environment.glob("lib/python*/site-packages")
    shutil.copytree(ROOT / "mltrain", site / "mltrain")  # what an install puts there
    (tmp_path / "train.py").write_text(USER_CODE)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--python-executable", str(environment / "bin" / "python"), "train.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    errors = sorted(line for line in checked.stdout.splitlines() if ": error:" in line)
    assert len(errors) == 2, checked.stdout
    assert 'Argument 1 to "log" of "Run" has incompatible type "str"' in errors[0], errors
    assert '"Run" has no attribute "cancel_requestd"' in errors[1], errors
