"""``mltrain worker`` (issue 15 item 8) as a process: how a command's exit maps to the job's end
(exit status, signal, a command that cannot start), and a worker that keeps going while its
server restarts. The whole story with two workers is tests/test_workers_e2e.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mltrain.client import FailureKind
from mltrain.worker import failure_of
from tests.conftest import BACKENDS, REAL_URI
from tests.live_servers import MLTRAIN, ROOT, free_port, serving
from tests.test_workers_e2e import CREATE, REGISTER, Api, wait_for

#: A command driven by the job's hyperparameters: print, then exit with ``exit`` or kill
#: itself with ``signal``; with ``wait_for`` (a path), first wait until it exists.
COMMAND = """
import json, os, signal, sys, time
hp = json.loads(os.environ["MLTRAIN_HYPERPARAMETERS"])
print("training", os.environ["MLTRAIN_JOB_ID"], flush=True)
while hp.get("wait_for") and not os.path.exists(hp["wait_for"]):
    time.sleep(0.02)
print(hp.get("say", "bye"), flush=True)
if hp.get("signal"):
    os.kill(os.getpid(), getattr(signal, hp["signal"]))
sys.exit(hp.get("exit", 0))
"""

JOB = """query($id: ID!) { trainingJob(jobId: $id) {
  status workerId failure { kind message exitCode } } }"""


def test_exit_statuses_and_signals_map_to_failure_kinds() -> None:
    assert failure_of(1) is FailureKind.USER_CODE
    assert failure_of(3) is FailureKind.USER_CODE
    assert failure_of(-signal.SIGKILL) is FailureKind.OUT_OF_MEMORY
    assert failure_of(128 + signal.SIGKILL) is FailureKind.OUT_OF_MEMORY  # through a shell
    assert failure_of(-signal.SIGTERM) is FailureKind.PREEMPTED
    assert failure_of(128 + signal.SIGINT) is FailureKind.PREEMPTED
    assert failure_of(-signal.SIGSEGV) is FailureKind.USER_CODE
    assert failure_of(124) is FailureKind.TIMED_OUT
    assert failure_of(127) is FailureKind.INFRASTRUCTURE
    assert failure_of(75) is FailureKind.INFRASTRUCTURE


@contextmanager
def command_worker(
    url: str, queue: str, directory: Path, command: list[str], *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    with (directory / f"worker-{queue}.log").open("w") as out:
        process = subprocess.Popen(
            [
                *MLTRAIN, "worker", "--url", url, "--queue", queue, "--lease-seconds", "3",
                "--poll-interval", "0.1", "--logs-dir", str(directory / "logs"), *extra,
                "--", *command,
            ],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def create(api: Api, queue: str, **hyperparameters: Any) -> str:
    version = {"modelName": f"m-{uuid.uuid4().hex[:6]}", "version": "1.0.0"}
    model = api.data(REGISTER, input={**version, "modelType": "REGRESSION"})
    fields = {
        "modelId": model["registerModelVersion"]["modelId"],
        "datasetId": "d",
        "queue": queue,
        "hyperparameters": hyperparameters,
    }
    return str(api.data(CREATE, input=fields)["createTrainingJob"]["jobId"])


def ended(api: Api, job_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = api.data(JOB, id=job_id)["trainingJob"]
        return job if job["status"] not in ("PENDING", "RUNNING") else None

    found: dict[str, Any] = wait_for(check, f"{job_id} to end")
    return found


def test_a_commands_exit_ends_its_job(tmp_path: Path) -> None:
    with serving() as (url, _log):
        api = Api(url)
        queue = f"q-{uuid.uuid4().hex[:6]}"
        cases = {
            create(api, queue, say="all good"): ("COMPLETED", None, None),
            create(api, queue, exit=3, say="loss is nan"): ("FAILED", "USER_CODE", 3),
            create(api, queue, signal="SIGKILL", say="alloc"): ("FAILED", "OUT_OF_MEMORY", 137),
            create(api, queue, signal="SIGTERM"): ("FAILED", "PREEMPTED", 143),
            create(api, queue, exit=75): ("FAILED", "INFRASTRUCTURE", 75),
        }  # fmt: skip
        with command_worker(
            url, queue, tmp_path, [sys.executable, "-c", COMMAND], "--concurrency", "2"
        ):
            for job_id, (status, kind, code) in cases.items():
                job = ended(api, job_id)
                assert job["status"] == status, job
                if status == "FAILED":
                    failure = job["failure"]
                    assert (failure["kind"], failure["exitCode"]) == (kind, code), job
                output = (tmp_path / "logs" / job_id / "output.log").read_text()
                assert output.startswith(f"training {job_id}\n"), output
        # The failure message names the exit and the command's last line of output.
        failed = api.data(JOB, id=list(cases)[1])
        message = failed["trainingJob"]["failure"]["message"]
        assert message == "exit status 3; last output: loss is nan"

        # A command that could be run when the worker started but cannot be when its job
        # comes (deleted meanwhile): INFRASTRUCTURE, nothing run.
        vanishing = f"q-{uuid.uuid4().hex[:6]}"
        script = tmp_path / "train.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
        with command_worker(url, vanishing, tmp_path, [str(script)]):
            started = tmp_path / f"worker-{vanishing}.log"
            wait_for(lambda: "mltrain worker: queue" in started.read_text(), "the worker")
            script.unlink()
            job = ended(api, create(api, vanishing))
        assert (job["status"], job["failure"]["kind"]) == ("FAILED", "INFRASTRUCTURE")
        assert "cannot start the command" in job["failure"]["message"]
        api.http.close()


def test_a_command_that_cannot_be_run_is_refused_before_any_claim(tmp_path: Path) -> None:
    """A misspelt command would otherwise claim and fail every job of the queue, one by one:
    the worker refuses it at start-up, naming the argument and the rule, and claims nothing."""
    not_executable = tmp_path / "train.py"
    not_executable.write_text("print('hi')\n")
    cases = {
        str(tmp_path / "no-such-command"): "is not a file",
        str(not_executable): "is not executable",
        f"no-such-program-{uuid.uuid4().hex[:6]}": "is not a program on PATH",
    }
    with serving() as (url, _log):
        api = Api(url)
        queue = f"q-{uuid.uuid4().hex[:6]}"
        job_id = create(api, queue)
        for program, problem in cases.items():
            with command_worker(url, queue, tmp_path, [program, "--epochs", "3"]) as process:
                wait_for(
                    lambda: (
                        process.poll() is not None
                        or api.data(JOB, id=job_id)["trainingJob"]["status"] != "PENDING"
                    ),
                    "the worker to refuse the command",
                )
                output = (tmp_path / f"worker-{queue}.log").read_text()
                assert process.poll() == 2, output
            assert f"COMMAND: {program!r} {problem}" in output, output
            assert "nothing was claimed" in output, output
            assert api.data(JOB, id=job_id)["trainingJob"]["status"] == "PENDING"
        api.http.close()


@contextmanager
def serve_on(port: int, env: dict[str, str], log: Path) -> Iterator[None]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    environment.update(env)
    with log.open("a") as out:
        process = subprocess.Popen(
            [*MLTRAIN, "serve", "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def healthy() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, "the server to start", within=30)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_keeps_going_across_a_server_restart(backend: str, tmp_path: Path) -> None:
    """The server goes away while a job's command runs and comes back on the same address:
    the worker's calls wait it out (backoff); with a database that outlived the server, the
    job that finished meanwhile is completed, and new jobs are claimed either way."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {}
    if backend == "real":
        assert REAL_URI
        env = {"MLTRAIN_MONGODB_URI": REAL_URI, "MLTRAIN_MONGODB_DATABASE": f"w_{port}"}
    log = tmp_path / "serve.log"
    queue = "restart"
    release = tmp_path / "release"
    api = Api(url)
    with command_worker(url, queue, tmp_path, [sys.executable, "-c", COMMAND]):
        with serve_on(port, env, log):
            during = create(api, queue, wait_for=str(release))
            wait_for(
                lambda: api.data(JOB, id=during)["trainingJob"]["status"] == "RUNNING",
                "the job to start",
            )
        # The server is down; the command finishes now.
        release.write_text("go")
        wait_for(
            lambda: "bye" in (tmp_path / "logs" / during / "output.log").read_text(),
            "the command to finish",
        )
        with serve_on(port, env, log):
            if backend == "real":
                assert ended(api, during)["status"] == "COMPLETED"
            after = create(api, queue)
            assert ended(api, after)["status"] == "COMPLETED"
    api.http.close()


#: A command that ignores SIGTERM (a training loop that never checks): only SIGKILL ends it.
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM: ignored", flush=True))
print("training", flush=True)
while True:
    time.sleep(0.05)
"""

KINDS = """query($id: ID!) { trainingJob(jobId: $id) {
  status history(first: 20) { edges { node { kind actor } } } } }"""


def test_a_cancel_reaches_the_command_as_sigterm_then_sigkill_within_the_grace(
    tmp_path: Path,
) -> None:
    """A command that ignores the cancel's SIGTERM is killed before the grace runs out, and
    the worker acknowledges the cancel itself (the server's sweep would otherwise force it
    at the deadline: CANCEL_FORCED)."""
    with serving() as (url, _log):
        api = Api(url)
        queue = f"q-{uuid.uuid4().hex[:6]}"
        job_id = create(api, queue)
        with command_worker(url, queue, tmp_path, [sys.executable, "-c", STUBBORN]):
            output = tmp_path / "logs" / job_id / "output.log"
            wait_for(lambda: output.exists() and "training" in output.read_text(), "the run")
            asked = api.data(
                "mutation($id: ID!) { cancelTrainingJob(jobId: $id, graceSeconds: 10) {"
                " ... on TrainingJob { status } } }",
                id=job_id,
            )
            assert asked["cancelTrainingJob"]["status"] == "RUNNING"
            job = ended(api, job_id)
            ended_by = api.data(KINDS, id=job_id)["trainingJob"]["history"]["edges"][-1]["node"]
        api.http.close()
    assert job["status"] == "CANCELLED"
    assert "SIGTERM: ignored" in output.read_text()
    assert ended_by["kind"] == "CANCEL_ACKNOWLEDGED", ended_by


WORKER_KEY = "mlt_i0jw2Alm0IVE_CruZ29NMr83KQhZ0ED5CCKztnbhAbs"
WORKER_KEYS = {
    "MLTRAIN_API_KEYS": "w:worker:b39b6811ac58e574bcbcf2351cf5bb98ec5068cf4ee38ed76bb153518f10d18a"
}


def test_a_worker_whose_first_claim_is_refused_for_good_exits_with_the_reason(
    tmp_path: Path,
) -> None:
    """A wrong key, a URL that is not the server's, a queue against the rules: waiting cannot
    mend them, so instead of warning forever the worker exits with the server's reason (the
    field and the rule for a bad queue). A server that is away is still waited for."""
    with serving(env=WORKER_KEYS) as (url, _log):
        cases = {
            ("--api-key", "mlt_not_a_key"): "UNAUTHENTICATED: A valid API key is required",
            ("--api-key", WORKER_KEY, "--url", url + "/api"): "NOT_GRAPHQL:",
            ("--api-key", WORKER_KEY, "--queue", "bad queue"): (
                "VALIDATION_ERROR: queue: must be 1-128 ASCII letters"
            ),
        }
        for arguments, reason in cases.items():
            environment = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
            process = subprocess.Popen(
                [*MLTRAIN, "worker", "--url", url, "--logs-dir", str(tmp_path / "logs"),
                 *arguments, "--", sys.executable, "-c", "pass"],
                cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            try:
                output = process.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                process.kill()
                output = process.communicate()[0]
            assert process.returncode == 2, (reason, output)
            assert f"mltrain: the server refused the worker's first claim: {reason}" in output
