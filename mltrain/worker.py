"""``mltrain worker``: the reference worker (docs/workers.md).

It claims jobs of one queue, runs a command for each (the job's id, lease and
hyperparameters in its environment and in a JSON file), heartbeats while the command runs,
writes the command's output to ``<logs dir>/<job id>/output.log``, and ends the job from the
command's exit status. A cancel asked for on the server reaches the command as SIGTERM, then
SIGKILL once the grace has run out. Every call goes through ``mltrain.Client``, which retries
with backoff while the server cannot be reached, so a server restart only pauses the worker.

One thread per slot (``concurrency``); each runs one job at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mltrain.client import (
    ENV_API_KEY,
    ENV_ATTEMPT,
    ENV_HYPERPARAMETERS,
    ENV_HYPERPARAMETERS_FILE,
    ENV_JOB_DIR,
    ENV_JOB_ID,
    ENV_LEASE_TOKEN,
    ENV_QUEUE,
    ENV_URL,
    ENV_WORKER_ID,
    ClaimedJob,
    Client,
    FailureKind,
    LeaseLost,
    MltrainError,
)

log = logging.getLogger("mltrain.worker")

#: Exit statuses with a meaning of their own (others are USER_CODE). A shell reports a process
#: killed by signal N as 128 + N, so those map like the signals below.
EXIT_KINDS: dict[int, FailureKind] = {
    75: FailureKind.INFRASTRUCTURE,  # EX_TEMPFAIL: "try again later"
    124: FailureKind.TIMED_OUT,  # timeout(1)
    126: FailureKind.INFRASTRUCTURE,  # the command is not executable
    127: FailureKind.INFRASTRUCTURE,  # the command was not found
}
#: A command ended by a signal the worker did not send.
SIGNAL_KINDS: dict[int, FailureKind] = {
    signal.SIGKILL: FailureKind.OUT_OF_MEMORY,  # what the kernel's OOM killer sends
    signal.SIGTERM: FailureKind.PREEMPTED,  # the machine or its scheduler stopping it
    signal.SIGINT: FailureKind.PREEMPTED,
    signal.SIGHUP: FailureKind.PREEMPTED,
}


#: Answers to a claim that waiting cannot mend: a wrong key or URL, a queue against the rules,
#: a server that speaks another version of the API.
REFUSED_FOR_GOOD = frozenset({
    "UNAUTHENTICATED", "FORBIDDEN", "VALIDATION_ERROR", "NOT_GRAPHQL",
    "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED",
})  # fmt: skip


def failure_of(returncode: int) -> FailureKind:
    """The failure kind of a command that exited with ``returncode`` (Popen's: -N for a
    signal N), unasked: the worker neither cancelled nor stopped it."""
    if returncode < 0:
        return SIGNAL_KINDS.get(-returncode, FailureKind.USER_CODE)
    if returncode > 128 and returncode - 128 in SIGNAL_KINDS:
        return SIGNAL_KINDS[returncode - 128]
    return EXIT_KINDS.get(returncode, FailureKind.USER_CODE)


def command_problem(command: Sequence[str]) -> str | None:
    """Why ``command`` cannot be run as a job's command would be (in the worker's directory,
    its program a path or found on PATH); None if it can. Checked before the first claim: a
    misspelt command would otherwise claim and fail every job of the queue, one by one."""
    program = command[0]
    if os.sep in program:
        path = Path(program)
        if not path.is_file():
            return f"{program!r} is not a file"
        if not os.access(path, os.X_OK):
            return f"{program!r} is not executable"
        return None
    if shutil.which(program) is None:
        return f"{program!r} is not a program on PATH"
    return None


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


@dataclass
class WorkerConfig:
    url: str
    queue: str
    command: Sequence[str]
    api_key: str | None = None
    worker_id: str | None = None
    concurrency: int = 1
    lease_seconds: int = 60
    #: Where each job's output goes: ``<logs_dir>/<job id>/output.log``.
    logs_dir: Path = field(default_factory=lambda: Path("mltrain-logs"))
    #: Where ``logs_dir`` can be read from (``https://host/logs``, ``s3://bucket/logs``): a
    #: job's logsUrl is ``<logs_url>/<job id>/output.log``. None: no logsUrl is set.
    logs_url: str | None = None
    #: Seconds between claims while the queue is empty.
    poll_interval: float = 1.0
    #: Seconds between SIGTERM and SIGKILL when the worker stops a command itself (lease lost,
    #: worker shutting down); a cancel's grace is the server's.
    kill_grace: float = 10.0
    #: Seconds one call retries while the server cannot be reached; the worker itself keeps
    #: going past it (a longer restart is waited out, with backoff).
    retry_for: float = 30.0
    #: Stop after this many jobs (all slots together); None: run until stopped.
    max_jobs: int | None = None


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.stopping = threading.Event()
        self._jobs_started = 0
        self._count = threading.Lock()
        self._children: set[subprocess.Popen[bytes]] = set()
        #: A claim was answered (a job or none): the URL, the key and the queue are right.
        self._answered = threading.Event()
        #: Why the worker stopped before any claim was answered (``run_worker`` raises it).
        self.refused: MltrainError | None = None

    def client(self, retry_for: float | None = None) -> Client:
        return Client(
            self.config.url,
            self.config.api_key,
            worker_id=self.config.worker_id,
            retry_for=self.config.retry_for if retry_for is None else retry_for,
        )

    def run(self) -> None:
        """Run the slots until ``stop`` (or ``max_jobs``); then wait for them."""
        slots = [
            threading.Thread(target=self._slot, args=(n,), name=f"slot-{n}", daemon=True)
            for n in range(self.config.concurrency)
        ]
        for slot in slots:
            slot.start()
        for slot in slots:
            while slot.is_alive():
                slot.join(0.5)

    def stop(self) -> None:
        """Claim nothing more; commands running are asked to stop (SIGTERM) and their jobs
        fail as PREEMPTED (retried by a policy that lists it)."""
        self.stopping.set()

    def _take_turn(self) -> bool:
        with self._count:
            if self.config.max_jobs is not None and self._jobs_started >= self.config.max_jobs:
                return False
            self._jobs_started += 1
            return True

    def _slot(self, number: int) -> None:
        client = self.client()
        # Claims are not retried inside the call: this loop retries them, with backoff, in
        # waits a stop ends at once (a stopping worker holds no job to report on). Inside the
        # call, a stop while the server was away waited up to retry_for.
        claimer = self.client(retry_for=0)
        pause = self.config.poll_interval
        try:
            while not self.stopping.is_set():
                if not self._take_turn():
                    return
                try:
                    job = claimer.claim(self.config.queue, self.config.lease_seconds)
                except MltrainError as error:
                    self._give_back_turn()
                    if error.code in REFUSED_FOR_GOOD and not self._answered.is_set():
                        # Refused before any claim was answered: a mistake in how the worker
                        # was started, which retrying forever would only hide. (Once claims
                        # were answered, a refusal may pass, e.g. during a restart: wait.)
                        self.refused = error
                        self.stopping.set()
                        return
                    # Server away (restart) or refusing: wait, longer each time, and go on.
                    log.warning("claim failed (%s); again in %.1f s", error, pause)
                    self.stopping.wait(pause)
                    pause = min(pause * 2, 5.0)  # as a call retries: a restart is seen soon
                    continue
                self._answered.set()
                pause = self.config.poll_interval
                if job is None:
                    self._give_back_turn()
                    self.stopping.wait(self.config.poll_interval)
                    continue
                log.info("slot %d: claimed %s (attempt %d)", number, job.job_id, job.attempt)
                JobRun(self, client, job).run()
        finally:
            claimer.close()
            client.close()

    def _give_back_turn(self) -> None:
        with self._count:
            self._jobs_started -= 1


class JobRun:
    """One claimed job: its command, heartbeats, and the end it reports."""

    def __init__(self, worker: Worker, client: Client, job: ClaimedJob) -> None:
        self.worker = worker
        self.config = worker.config
        self.client = client
        self.job = job
        self.directory = self.config.logs_dir / job.job_id
        #: When the command was sent SIGTERM, and why ("cancel", "lost", "stopping").
        self.terminated_at: float | None = None
        self.terminated_for: str | None = None
        self.kill_at: float | None = None

    def _environment(self, hyperparameters_file: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                ENV_URL: self.config.url,
                ENV_WORKER_ID: self.client.worker_id,
                ENV_JOB_ID: self.job.job_id,
                ENV_LEASE_TOKEN: self.job.lease_token,
                ENV_QUEUE: self.job.queue,
                ENV_ATTEMPT: str(self.job.attempt),
                ENV_HYPERPARAMETERS: json.dumps(self.job.hyperparameters),
                ENV_HYPERPARAMETERS_FILE: str(hyperparameters_file),
                ENV_JOB_DIR: str(self.directory),
            }
        )
        if self.config.api_key:
            env[ENV_API_KEY] = self.config.api_key
        return env

    def run(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        hyperparameters_file = self.directory / "hyperparameters.json"
        hyperparameters_file.write_text(json.dumps(self.job.hyperparameters, indent=2))
        output = self.directory / "output.log"
        if self.config.logs_url:
            url = f"{self.config.logs_url.rstrip('/')}/{self.job.job_id}/output.log"
            self._call(lambda: self.client.set_logs_url(self.job, url))
        with output.open("ab") as out:
            try:
                process = subprocess.Popen(
                    list(self.config.command),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self._environment(hyperparameters_file),
                    # The worker's own directory, as a shell would run it: `-- python
                    # train.py` finds train.py where the worker was started. The job's own
                    # directory (hyperparameters, output, room for checkpoints) is in
                    # MLTRAIN_JOB_DIR.
                    cwd=None,
                    # Its own process group: a cancel reaches the command and its children.
                    start_new_session=True,
                )
            except OSError as error:
                reason = f"cannot start the command: {error}"
                self._finish_call(
                    lambda: self.client.fail(self.job, reason, FailureKind.INFRASTRUCTURE)
                )
                return
            self.worker._children.add(process)
            try:
                returncode = self._supervise(process)
            finally:
                self.worker._children.discard(process)
        self._report_end(returncode, output)

    def _supervise(self, process: subprocess.Popen[bytes]) -> int:
        """Wait for the command, heartbeating every third of the lease; forward a cancel."""
        beat_every = max(self.job.lease_seconds / 3, 0.2)
        while True:
            try:
                return process.wait(timeout=self._next_wait(beat_every))
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if self.kill_at is not None and now >= self.kill_at:
                self._signal(process, signal.SIGKILL)
                self.kill_at = None
                continue
            if self.worker.stopping.is_set() and self.terminated_at is None:
                self._terminate(process, "stopping", self.config.kill_grace)
            if self.terminated_for == "lost":
                continue  # no lease to heartbeat
            try:
                answer = self.client.heartbeat_answer(self.job)
            except LeaseLost:
                log.warning("%s: lease lost; stopping its command", self.job.job_id)
                self._terminate(process, "lost", self.config.kill_grace, force=True)
                continue
            except MltrainError as error:
                if error.code == "INVALID_TRANSITION":  # cancelled at once, or ended
                    self._terminate(process, "lost", self.config.kill_grace, force=True)
                else:  # the server is away: the command goes on, heartbeats resume later
                    log.warning("%s: heartbeat failed: %s", self.job.job_id, error)
                continue
            if answer.cancel_requested and self.terminated_for != "cancel":
                grace = self.config.kill_grace
                if answer.cancel_deadline is not None:
                    # Most of the server's grace: the rest is for the acknowledgement.
                    left = (answer.cancel_deadline - datetime.now(UTC)).total_seconds()
                    grace = max(0.0, left * 0.9)
                log.info("%s: cancel requested; SIGTERM, %.0f s grace", self.job.job_id, grace)
                self._terminate(process, "cancel", grace, force=True)

    def _next_wait(self, beat_every: float) -> float:
        if self.kill_at is None:
            return beat_every
        return max(0.05, min(beat_every, self.kill_at - time.monotonic()))

    def _terminate(
        self, process: subprocess.Popen[bytes], why: str, grace: float, *, force: bool = False
    ) -> None:
        if self.terminated_at is not None and not force:
            return
        self.terminated_for = why
        if self.terminated_at is None:
            self.terminated_at = time.monotonic()
            self._signal(process, signal.SIGTERM)
        self.kill_at = time.monotonic() + grace

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], which: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, which)

    def _report_end(self, returncode: int, output: Path) -> None:
        if self.terminated_for == "lost":
            log.info(
                "%s: command ended (%s); the job is no longer this worker's",
                self.job.job_id,
                describe(returncode),
            )
            return  # the job is someone else's now (or over): nothing to report
        if self.terminated_for == "cancel":
            log.info("%s: stopped after a cancel (%s)", self.job.job_id, describe(returncode))
            self._finish_call(lambda: self.client.acknowledge_cancel(self.job))
            return
        if returncode == 0 and self.terminated_for is None:
            log.info("%s: command ended (exit status 0): COMPLETED", self.job.job_id)
            self._finish_call(lambda: self.client.complete(self.job))
            return
        if self.terminated_for == "stopping":
            kind = FailureKind.PREEMPTED
        else:
            kind = failure_of(returncode)
        reason = f"{describe(returncode)}{_last_line(output)}"
        code = returncode if returncode >= 0 else 128 - returncode
        log.info(
            "%s: command ended (%s): FAILED, %s; output in %s",
            self.job.job_id,
            describe(returncode),
            kind.value,
            output,
        )
        self._finish_call(lambda: self.client.fail(self.job, reason, kind, code))

    def _finish_call(self, call: Callable[[], None]) -> None:
        """The job's last call: retried until it lands or the lease is gone."""
        pause = 1.0
        while True:
            try:
                call()
                return
            except LeaseLost:
                return
            except MltrainError as error:
                if error.code == "INVALID_TRANSITION":
                    return  # ended meanwhile (cancelled, failed by the server)
                if error.code not in ("UNAVAILABLE", "RATE_LIMITED"):
                    log.error("%s: the server refused the job's end: %s", self.job.job_id, error)
                    return
                log.warning("%s: %s; retrying in %.0f s", self.job.job_id, error, pause)
                time.sleep(pause)
                pause = min(pause * 2, 30.0)

    def _call(self, call: Callable[[], None]) -> None:
        try:
            call()
        except MltrainError as error:
            log.warning("%s: %s", self.job.job_id, error)


def _last_line(output: Path) -> str:
    """'; last output: ...' with the command's last line of output, if any."""
    try:
        with output.open("rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - 4096))
            tail = file.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return f"; last output: {tail[-1][:300]}" if tail else ""


def run_worker(config: WorkerConfig) -> None:
    """Run until SIGTERM or SIGINT (then: claim nothing more, stop the commands, report).
    Raises ``MltrainError`` if the server refused the first claim for good (a wrong key or
    URL, a bad queue: ``REFUSED_FOR_GOOD``)."""
    worker = Worker(config)

    def stop(signum: int, frame: object) -> None:
        log.info("stopping (%s)", signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run()
    if worker.refused is not None:
        raise worker.refused
