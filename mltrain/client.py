"""The client: GraphQL over HTTP (httpx), sync (``Client``) and async (``AsyncClient``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import FrameType, TracebackType
from typing import Any, SupportsFloat

import httpx

from graphql_api.domain.text import PolicyError, check_key

log = logging.getLogger("mltrain")

#: Seconds a call keeps retrying while the server cannot be reached (a restart), with backoff.
DEFAULT_RETRY_FOR = 60.0
#: Points one reportTrainingMetrics call carries at most (the server's limit, all keys together).
MAX_POINTS_PER_CALL = 1000

#: The environment ``mltrain worker`` gives the command it runs (docs/workers.md).
ENV_URL = "MLTRAIN_URL"
ENV_API_KEY = "MLTRAIN_API_KEY"
ENV_WORKER_ID = "MLTRAIN_WORKER_ID"
ENV_JOB_ID = "MLTRAIN_JOB_ID"
ENV_LEASE_TOKEN = "MLTRAIN_LEASE_TOKEN"
ENV_QUEUE = "MLTRAIN_QUEUE"
ENV_ATTEMPT = "MLTRAIN_ATTEMPT"
ENV_HYPERPARAMETERS = "MLTRAIN_HYPERPARAMETERS"
ENV_HYPERPARAMETERS_FILE = "MLTRAIN_HYPERPARAMETERS_FILE"
ENV_JOB_DIR = "MLTRAIN_JOB_DIR"

_CLAIM = """
mutation($queue: String!, $worker: ID!, $lease: Int) {
  claimTrainingJob(queue: $queue, workerId: $worker, leaseSeconds: $lease) {
    __typename
    ... on TrainingJob { jobId queue attempt hyperparameters leaseToken }
    ... on Error { code message }
  }
}"""
_HEARTBEAT = """
mutation($id: ID!, $token: String!) {
  heartbeatTrainingJob(jobId: $id, leaseToken: $token) {
    __typename
    ... on TrainingJob { status cancelRequestedAt cancelDeadlineAt }
    ... on InvalidTransitionError { currentStatus }
    ... on Error { code message }
  }
}"""
_REPORT = """
mutation($id: ID!, $token: String, $metrics: JSON!) {
  reportTrainingMetrics(jobId: $id, leaseToken: $token, metrics: $metrics) {
    __typename ... on Error { code message }
  }
}"""
_REPORT_SERIES = """
mutation($id: ID!, $token: String, $series: [MetricSeriesInput!]) {
  reportTrainingMetrics(jobId: $id, leaseToken: $token, series: $series) {
    __typename ... on Error { code message }
  }
}"""
_SET_LOGS = """
mutation($id: ID!, $url: String!) {
  setTrainingJobLogsUrl(jobId: $id, logsUrl: $url) {
    __typename ... on Error { code message }
  }
}"""
_COMPLETE = """
mutation($id: ID!, $token: String, $metrics: JSON) {
  completeTrainingJob(jobId: $id, leaseToken: $token, metrics: $metrics) {
    __typename ... on Error { code message }
  }
}"""
_FAIL = """
mutation($id: ID!, $token: String, $reason: String!, $kind: FailureKind!, $code: Int) {
  failTrainingJob(jobId: $id, leaseToken: $token, reason: $reason, kind: $kind, exitCode: $code) {
    __typename ... on Error { code message }
  }
}"""
_ACKNOWLEDGE = """
mutation($id: ID!, $token: String) {
  acknowledgeTrainingJobCancel(jobId: $id, leaseToken: $token) {
    __typename ... on Error { code message }
  }
}"""


class FailureKind(StrEnum):
    """Why a job failed (the server's ``FailureKind``)."""

    USER_CODE = "USER_CODE"
    INFRASTRUCTURE = "INFRASTRUCTURE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    PREEMPTED = "PREEMPTED"
    TIMED_OUT = "TIMED_OUT"
    HEARTBEAT_LOST = "HEARTBEAT_LOST"


class MltrainError(Exception):
    """The server refused a call: ``code`` is its ``Error.code`` (or ``GRAPHQL_ERROR``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class LeaseLost(MltrainError):
    """The job was taken from this worker (its lease lapsed and it failed, or it was
    cancelled): stop working on it."""


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds: its id, hyperparameters and lease token. ``held_by_worker``:
    another process (``mltrain worker``) holds the lease and heartbeats; this one only
    reports metrics (``job_from_env``)."""

    job_id: str
    queue: str
    hyperparameters: dict[str, Any]
    lease_token: str
    lease_seconds: int
    attempt: int = 1
    held_by_worker: bool = False


@dataclass(frozen=True)
class HeartbeatAnswer:
    """What a heartbeat answered: whether a graceful cancel was asked for, and until when
    the worker may take to stop (then the server cancels the job itself)."""

    cancel_requested: bool
    cancel_deadline: datetime | None = None

    @classmethod
    def of(cls, beat: dict[str, Any] | None) -> HeartbeatAnswer:
        if beat is None or beat.get("cancelRequestedAt") is None:
            return cls(False)
        deadline = beat.get("cancelDeadlineAt")
        return cls(True, None if deadline is None else datetime.fromisoformat(deadline))


def job_from_env(environ: Mapping[str, str] | None = None) -> ClaimedJob | None:
    """The job ``mltrain worker`` runs this process for (its environment: docs/workers.md), or
    None when not run by a worker. Its ``Run`` reports metrics and leaves heartbeats and the
    job's end to the worker (the process's exit status says how it ended)."""
    env = os.environ if environ is None else environ
    job_id = env.get(ENV_JOB_ID)
    if not job_id:
        return None
    path = env.get(ENV_HYPERPARAMETERS_FILE)
    if path:
        with open(path, encoding="utf-8") as file:
            hyperparameters = json.load(file)
    else:
        hyperparameters = json.loads(env.get(ENV_HYPERPARAMETERS) or "{}")
    return ClaimedJob(
        job_id=job_id,
        queue=env.get(ENV_QUEUE, "default"),
        hyperparameters=hyperparameters,
        lease_token=env.get(ENV_LEASE_TOKEN, ""),
        lease_seconds=0,
        attempt=int(env.get(ENV_ATTEMPT, "1")),
        held_by_worker=True,
    )


def failure_kind_of(error: BaseException) -> FailureKind:
    """The failure kind an exception out of training code maps to."""
    if isinstance(error, MemoryError):
        return FailureKind.OUT_OF_MEMORY
    if isinstance(error, TimeoutError):
        return FailureKind.TIMED_OUT
    if isinstance(error, (ConnectionError, OSError)):
        return FailureKind.INFRASTRUCTURE
    if isinstance(error, KeyboardInterrupt):
        return FailureKind.PREEMPTED
    return FailureKind.USER_CODE


def _claimed(job: dict[str, Any], lease_seconds: int) -> ClaimedJob:
    return ClaimedJob(
        job["jobId"],
        job["queue"],
        job["hyperparameters"],
        job["leaseToken"],
        lease_seconds,
        attempt=int(job.get("attempt") or 1),
    )


def _columns(points: Mapping[tuple[str, int], tuple[float, str]]) -> list[dict[str, Any]]:
    """Points as ``series`` columns: per key its steps, values and timestamps."""
    by_key: dict[str, tuple[list[int], list[float], list[str]]] = {}
    for (key, step), (value, at) in points.items():
        steps, values, timestamps = by_key.setdefault(key, ([], [], []))
        steps.append(step)
        values.append(value)
        timestamps.append(at)
    return [
        {"key": key, "steps": steps, "values": values, "timestamps": timestamps}
        for key, (steps, values, timestamps) in by_key.items()
    ]


def _result(body: dict[str, Any], field: str) -> dict[str, Any] | None:
    if body.get("errors"):
        first = body["errors"][0]
        code = str((first.get("extensions") or {}).get("code", "GRAPHQL_ERROR"))
        raise MltrainError(code, str(first.get("message")))
    result: dict[str, Any] | None = body["data"][field]
    if result is not None and "code" in result:
        error = LeaseLost if result["code"] == "LEASE_LOST" else MltrainError
        raise error(str(result["code"]), str(result.get("message")))
    return result


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _endpoint(url: str) -> str:
    """The GraphQL endpoint of the server at ``url``: ``http://host:8000`` or the endpoint's
    own address (``http://host:8000/graphql``, as GraphiQL shows it)."""
    base = url.rstrip("/")
    return base if base.endswith("/graphql") else base + "/graphql"


class _Attempts:
    """One call's attempts: an answer is returned; no answer (the server away or restarting:
    no connection, HTTP 5xx) and HTTP 429 (rate limited: after its ``Retry-After``) are tried
    again with backoff until ``retry_for`` seconds have passed, then raise ``MltrainError``
    (``UNAVAILABLE``, ``RATE_LIMITED``); a response that is no GraphQL answer (a wrong URL's
    404) raises ``NOT_GRAPHQL`` at once."""

    def __init__(self, url: str, retry_for: float) -> None:
        self.url = url
        self.deadline = time.monotonic() + retry_for
        self.delay = 0.1
        self.retries = 0

    def outcome(
        self, response: httpx.Response | None, failure: Exception | None = None
    ) -> tuple[dict[str, Any] | None, float]:
        """The body of an answer, or None and the seconds to wait before the next attempt."""
        code, wait, why = "UNAVAILABLE", self.delay, f"no answer from {self.url}"
        if response is not None and response.status_code == 429:
            code, why = "RATE_LIMITED", f"{self.url} is rate limiting this key"
            with contextlib.suppress(ValueError):
                wait = max(wait, float(response.headers.get("retry-after", "")))
        elif response is not None and response.status_code < 500:
            return _graphql_body(self.url, response), 0.0
        elif response is not None:
            why = f"{self.url} answered HTTP {response.status_code}"
        if time.monotonic() + wait > self.deadline:
            raise MltrainError(code, why)
        if not self.retries:  # once per call: a server away for long warns every retry_for
            log.warning(
                "mltrain: %s (%s); trying again for up to %.0f s",
                why,
                failure or code,
                self.deadline - time.monotonic(),
            )
        self.retries += 1
        self.delay = min(self.delay * 2, 5.0)
        return None, wait


def _graphql_body(url: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not ("data" in body or "errors" in body):
        raise MltrainError(
            "NOT_GRAPHQL",
            f"{url} answered HTTP {response.status_code} {response.reason_phrase}, not a "
            "GraphQL response: is the URL the mltrain server's (http://host:8000)?",
        )
    return body


class Client:
    """A synchronous client. ``url``: the server (``http://host:8000``; ``/graphql`` is
    added unless given); ``api_key``: a key of role worker or higher; ``worker_id``: how this
    worker is shown (``TrainingJob.workerId``), the host name by default. Calls retry with
    backoff for ``retry_for`` seconds while the server cannot be reached (a restart) or rate
    limits the key (after its ``Retry-After``); a URL that answers no GraphQL raises
    ``MltrainError`` ``NOT_GRAPHQL`` at once."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        worker_id: str | None = None,
        timeout: float = 10.0,
        retry_for: float = DEFAULT_RETRY_FOR,
    ) -> None:
        self.url = _endpoint(url)
        self.worker_id = worker_id or socket.gethostname().split(".")[0] or "worker"
        self._retry_for = retry_for
        self._http = httpx.Client(headers=_headers(api_key), timeout=timeout)

    @classmethod
    def from_env(cls, **options: Any) -> Client:
        """The client of a process ``mltrain worker`` runs: the server, key and worker id of
        its environment (MLTRAIN_URL, MLTRAIN_API_KEY, MLTRAIN_WORKER_ID)."""
        url = os.environ.get(ENV_URL)
        if not url:
            raise MltrainError("NOT_CONFIGURED", f"{ENV_URL} is not set (not run by a worker?)")
        return cls(
            url,
            os.environ.get(ENV_API_KEY) or None,
            worker_id=os.environ.get(ENV_WORKER_ID) or None,
            **options,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        """Any GraphQL document; the response body. Retried as ``_Attempts`` says."""
        attempts = _Attempts(self.url, self._retry_for)
        while True:
            response, failure = None, None
            try:
                response = self._http.post(self.url, json={"query": query, "variables": variables})
            except httpx.TransportError as error:
                failure = error
            body, wait = attempts.outcome(response, failure)
            if body is not None:
                return body
            time.sleep(wait)

    def claim(self, queue: str = "default", lease_seconds: int = 60) -> ClaimedJob | None:
        """The oldest PENDING job of ``queue``, now held by this worker; None if none."""
        body = self.execute(_CLAIM, queue=queue, worker=self.worker_id, lease=lease_seconds)
        job = _result(body, "claimTrainingJob")
        return None if job is None else _claimed(job, lease_seconds)

    def heartbeat(self, job: ClaimedJob) -> bool:
        """Extend the lease; whether a cancel was asked for (or the job was cancelled).
        LeaseLost if the job was taken from this worker."""
        return self.heartbeat_answer(job).cancel_requested

    def heartbeat_answer(self, job: ClaimedJob) -> HeartbeatAnswer:
        """``heartbeat``, with the cancel's deadline (when the server cancels the job if the
        worker has not acknowledged)."""
        body = self.execute(_HEARTBEAT, id=job.job_id, token=job.lease_token)
        return HeartbeatAnswer.of(_result(body, "heartbeatTrainingJob"))

    def report(self, job: ClaimedJob, metrics: Mapping[str, float]) -> None:
        """Set the job's latest metric values (no series points)."""
        body = self.execute(_REPORT, id=job.job_id, token=job.lease_token, metrics=dict(metrics))
        _result(body, "reportTrainingMetrics")

    def report_points(
        self, job: ClaimedJob, points: Mapping[tuple[str, int], tuple[float, str]]
    ) -> None:
        """Store metric points ((key, step) -> (value, ISO timestamp); at most 1,000) as
        series columns. A point for a stored step replaces it, so a retry never duplicates."""
        series = _columns(points)
        body = self.execute(_REPORT_SERIES, id=job.job_id, token=job.lease_token, series=series)
        _result(body, "reportTrainingMetrics")

    def set_logs_url(self, job: ClaimedJob, url: str) -> None:
        body = self.execute(_SET_LOGS, id=job.job_id, url=url)
        _result(body, "setTrainingJobLogsUrl")

    def complete(self, job: ClaimedJob, metrics: Mapping[str, float] | None = None) -> None:
        body = self.execute(
            _COMPLETE, id=job.job_id, token=job.lease_token, metrics=dict(metrics or {}) or None
        )
        _result(body, "completeTrainingJob")

    def fail(
        self,
        job: ClaimedJob,
        reason: str,
        kind: FailureKind = FailureKind.USER_CODE,
        exit_code: int | None = None,
    ) -> None:
        body = self.execute(
            _FAIL, id=job.job_id, token=job.lease_token, reason=reason, kind=kind, code=exit_code
        )
        _result(body, "failTrainingJob")

    def acknowledge_cancel(self, job: ClaimedJob) -> None:
        body = self.execute(_ACKNOWLEDGE, id=job.job_id, token=job.lease_token)
        _result(body, "acknowledgeTrainingJobCancel")

    def run(self, job: ClaimedJob, *, flush_interval: float = 1.0) -> Run:
        """A context manager for running ``job``: see ``Run``."""
        return Run(self, job, flush_interval=flush_interval)


#: The largest step the server stores (a 64-bit integer).
MAX_STEP = 2**63 - 1


def _checked_point(key: str, step: object, value: object) -> float:
    """``value`` as the float sent for ``key`` at ``step``, or ``ValueError`` saying which rule
    the point breaks (the server's rules: docs/metrics.md)."""
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise ValueError(f"step {step!r}: steps must be integers from 0 to 2**63 - 1")
    try:
        check_key(key, "metric")
    except PolicyError as error:
        raise ValueError(f"step {step}: {error}") from None
    # Whatever converts to a float (NumPy scalars, 0-d tensors) except text and booleans.
    number = None
    if not isinstance(value, bool | str | bytes):
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            number = float(value)  # type: ignore[arg-type]  # checked by trying
    if number is None:
        raise ValueError(
            f"metric {key!r} at step {step}: values must be numbers, not {type(value).__name__}"
        )
    if not math.isfinite(number):
        raise ValueError(
            f"metric {key!r} at step {step} is {number}: values must be finite numbers"
        )
    return number


class _Points:
    """Points logged and not yet stored: (key, step) -> (value, timestamp), a step logged twice
    keeping its last value. Thread-safe (``Run`` sends from a thread)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], tuple[float, str]] = {}
        self._lock = threading.Lock()
        self.last: dict[str, float] = {}

    def add(self, step: int, metrics: Mapping[str, SupportsFloat]) -> None:
        checked = {key: _checked_point(key, step, value) for key, value in metrics.items()}
        at = datetime.now(UTC).isoformat()
        with self._lock:
            for key, value in checked.items():
                self._pending[(key, step)] = (value, at)
                self.last[key] = value

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def batches(self) -> list[dict[tuple[str, int], tuple[float, str]]]:
        """What is pending now, in calls of at most 1,000 points."""
        with self._lock:
            snapshot = list(self._pending.items())
        return [
            dict(snapshot[start : start + MAX_POINTS_PER_CALL])
            for start in range(0, len(snapshot), MAX_POINTS_PER_CALL)
        ]

    def stored(self, batch: Mapping[tuple[str, int], tuple[float, str]]) -> None:
        """``batch`` was stored (or refused for good): forget its points, unless logged again
        meanwhile."""
        with self._lock:
            for point, sent in batch.items():
                if self._pending.get(point) == sent:
                    del self._pending[point]


def _after_refused_send(error: MltrainError, count: int) -> str:
    """What a failed send of ``count`` points means: ``keep`` them (the server is away or
    rate limiting, or the job is receiving another call's points, such as a send cut short
    that is still going on there, which answers CONFLICT "send them again": the next flush
    sends them), the job ``ended`` (by someone else: nothing more is stored), or ``drop``
    them (refused: sending them again would be refused again)."""
    if error.code in ("UNAVAILABLE", "RATE_LIMITED", "CONFLICT"):
        return "keep"
    if error.code == "INVALID_TRANSITION":
        return "ended"
    log.warning("mltrain: %d points refused: %s", count, error)
    return "drop"


class Run:
    """Running one job. ``log`` records each step's metrics; a background thread sends them
    as per-step series every ``flush_interval`` seconds (at most 1,000 points a call; points
    a call could not deliver, e.g. while the server restarts, are kept and sent again, so
    none is lost) and heartbeats (every third of the lease). ``cancel_requested`` says the
    job should stop. On a clean exit the job completes; on an exception it fails with the
    kind ``failure_kind_of`` gives, and the exception goes on. Leaving the ``with`` after a
    cancel was asked for acknowledges it instead.

    Under ``mltrain worker`` (a job from ``job_from_env``) the worker heartbeats and ends
    the job from the process's exit status: the run only sends points, and a SIGTERM (how
    the worker forwards a cancel) sets ``cancel_requested`` instead of killing the process,
    so it can save a checkpoint and exit 0."""

    def __init__(self, client: Client, job: ClaimedJob, *, flush_interval: float) -> None:
        self.client = client
        self.job = job
        self._flush_interval = flush_interval
        self._points = _Points()
        self._sending = threading.Lock()
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._lost = threading.Event()
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._background, daemon=True)
        self._previous_sigterm: Any = None
        #: Each key's last logged value.
        self.last_metrics = self._points.last

    @property
    def cancel_requested(self) -> bool:
        """A cancel was asked for (or the job was taken): stop soon and leave the ``with``."""
        return self._cancel.is_set() or self._lost.is_set()

    @property
    def lease_lost(self) -> bool:
        """The job was taken from this worker: nothing more is recorded for it."""
        return self._lost.is_set()

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return self.job.hyperparameters

    def log(self, step: int, **metrics: SupportsFloat) -> None:
        """Record this step's metrics (each a per-step series: ``TrainingJob.metricSeries``);
        sent in the background.

        Raises ``ValueError``, recording nothing of the call, for a point the server would
        refuse (docs/metrics.md): a step that is not an integer from 0 to 2**63 - 1, a value
        that is not a finite number (NaN, infinity), a key that breaks the metric key rules.
        Checked here, where the caller can act on it: sent, one such point would have the
        whole call of up to 1,000 points refused."""
        self._points.add(step, metrics)

    @property
    def unsent(self) -> int:
        """Points logged and not yet stored."""
        return len(self._points)

    def flush(self) -> None:
        """Send what is pending now, 1,000 points a call. Points of a call that fails for want
        of the server stay pending (the next flush sends them); a refused call's points are
        dropped with a warning (sending them again would be refused again)."""
        with self._sending:
            for batch in self._points.batches():
                if self._lost.is_set() or self._ended.is_set():
                    return
                try:
                    self.client.report_points(self.job, batch)
                except LeaseLost:
                    self._lost.set()
                    return
                except MltrainError as error:
                    after = _after_refused_send(error, len(batch))
                    if after == "keep":
                        return
                    if after == "ended":
                        self._ended.set()
                        self._cancel.set()
                        return
                self._points.stored(batch)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._cancel.set()

    def __enter__(self) -> Run:
        if self.job.held_by_worker and threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        if self._lost.is_set():
            return
        self._flush_all()
        if self._lost.is_set() or self.job.held_by_worker:
            return
        try:
            if error is not None:
                self.client.fail(
                    self.job, f"{type(error).__name__}: {error}", failure_kind_of(error)
                )
            elif self._cancel.is_set():
                self.client.acknowledge_cancel(self.job)
            else:
                self.client.complete(self.job)
        except LeaseLost:
            pass
        except MltrainError as refused:
            if refused.code != "INVALID_TRANSITION":  # ended by someone else: nothing to do
                raise

    def _flush_all(self) -> None:
        """Flush until nothing is pending, for as long as the client retries a call."""
        give_up_at = time.monotonic() + self.client._retry_for
        while self.unsent and not self._lost.is_set() and not self._ended.is_set():
            self.flush()
            if time.monotonic() > give_up_at:
                log.warning("mltrain: %d points could not be sent", self.unsent)
                return

    def _background(self) -> None:
        beat_every = max(self.job.lease_seconds / 3, 0.2)
        next_beat = time.monotonic() + beat_every
        while not self._stop.wait(min(self._flush_interval, beat_every)):
            if not self.job.held_by_worker and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + beat_every
                try:
                    if self.client.heartbeat(self.job):
                        self._cancel.set()
                except LeaseLost:
                    self._lost.set()
                    return
                except MltrainError as error:
                    if error.code == "INVALID_TRANSITION":
                        self._cancel.set()  # ended by someone else (cancelled)
            try:
                self.flush()
            except Exception:  # a bug must not stop the heartbeats: the job would be lost
                log.exception("mltrain: sending metric points failed; trying again later")
            if self._lost.is_set():
                return


class AsyncClient:
    """The asynchronous client: the same calls as ``Client``, awaited."""

    def __init__(
        self, url: str, api_key: str | None = None, *, worker_id: str | None = None,
        timeout: float = 10.0, retry_for: float = DEFAULT_RETRY_FOR,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:  # fmt: skip
        self.url = _endpoint(url)
        self.worker_id = worker_id or socket.gethostname().split(".")[0] or "worker"
        self._retry_for = retry_for
        self._http = httpx.AsyncClient(
            headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        """``Client.execute``, awaited."""
        attempts = _Attempts(self.url, self._retry_for)
        while True:
            response, failure = None, None
            try:
                response = await self._http.post(
                    self.url, json={"query": query, "variables": variables}
                )
            except httpx.TransportError as error:
                failure = error
            body, wait = attempts.outcome(response, failure)
            if body is not None:
                return body
            await asyncio.sleep(wait)

    async def claim(self, queue: str = "default", lease_seconds: int = 60) -> ClaimedJob | None:
        body = await self.execute(_CLAIM, queue=queue, worker=self.worker_id, lease=lease_seconds)
        job = _result(body, "claimTrainingJob")
        return None if job is None else _claimed(job, lease_seconds)

    async def heartbeat(self, job: ClaimedJob) -> bool:
        return (await self.heartbeat_answer(job)).cancel_requested

    async def heartbeat_answer(self, job: ClaimedJob) -> HeartbeatAnswer:
        body = await self.execute(_HEARTBEAT, id=job.job_id, token=job.lease_token)
        return HeartbeatAnswer.of(_result(body, "heartbeatTrainingJob"))

    async def report(self, job: ClaimedJob, metrics: Mapping[str, float]) -> None:
        body = await self.execute(
            _REPORT, id=job.job_id, token=job.lease_token, metrics=dict(metrics)
        )
        _result(body, "reportTrainingMetrics")

    async def report_points(
        self, job: ClaimedJob, points: Mapping[tuple[str, int], tuple[float, str]]
    ) -> None:
        """``Client.report_points``, awaited."""
        series = _columns(points)
        body = await self.execute(
            _REPORT_SERIES, id=job.job_id, token=job.lease_token, series=series
        )
        _result(body, "reportTrainingMetrics")

    async def complete(self, job: ClaimedJob, metrics: Mapping[str, float] | None = None) -> None:
        body = await self.execute(
            _COMPLETE, id=job.job_id, token=job.lease_token, metrics=dict(metrics or {}) or None
        )
        _result(body, "completeTrainingJob")

    async def fail(
        self,
        job: ClaimedJob,
        reason: str,
        kind: FailureKind = FailureKind.USER_CODE,
        exit_code: int | None = None,
    ) -> None:
        body = await self.execute(
            _FAIL, id=job.job_id, token=job.lease_token, reason=reason, kind=kind, code=exit_code
        )
        _result(body, "failTrainingJob")

    async def set_logs_url(self, job: ClaimedJob, url: str) -> None:
        body = await self.execute(_SET_LOGS, id=job.job_id, url=url)
        _result(body, "setTrainingJobLogsUrl")

    async def acknowledge_cancel(self, job: ClaimedJob) -> None:
        body = await self.execute(_ACKNOWLEDGE, id=job.job_id, token=job.lease_token)
        _result(body, "acknowledgeTrainingJobCancel")

    def run(self, job: ClaimedJob, *, flush_interval: float = 1.0) -> AsyncRun:
        """An async context manager for running ``job``: see ``AsyncRun``."""
        return AsyncRun(self, job, flush_interval=flush_interval)


class AsyncRun:
    """``Run`` for asyncio code: ``async with client.run(job) as run:``. ``log`` is the same
    call (not awaited: it only records); a task of the run sends the points every
    ``flush_interval`` seconds and heartbeats (every third of the lease); leaving the block
    completes the job, fails it with the exception's kind, or acknowledges a cancel, as
    ``Run`` does. Under ``mltrain worker`` it only sends points, and SIGTERM sets
    ``cancel_requested`` (on the main thread's event loop)."""

    def __init__(self, client: AsyncClient, job: ClaimedJob, *, flush_interval: float) -> None:
        self.client = client
        self.job = job
        self._flush_interval = flush_interval
        self._points = _Points()
        self._sending = asyncio.Lock()
        self._cancel = False
        self._lost = False
        self._ended = False
        self._task: asyncio.Task[None] | None = None
        self._sigterm_handled = False
        #: Each key's last logged value.
        self.last_metrics = self._points.last

    @property
    def cancel_requested(self) -> bool:
        """A cancel was asked for (or the job was taken): stop soon and leave the block."""
        return self._cancel or self._lost

    @property
    def lease_lost(self) -> bool:
        """The job was taken from this worker: nothing more is recorded for it."""
        return self._lost

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return self.job.hyperparameters

    def log(self, step: int, **metrics: SupportsFloat) -> None:
        """``Run.log``: records this step's metrics, sent in the background; ``ValueError``
        (nothing recorded) for a point the server would refuse."""
        self._points.add(step, metrics)

    @property
    def unsent(self) -> int:
        """Points logged and not yet stored."""
        return len(self._points)

    async def flush(self) -> None:
        """``Run.flush``, awaited."""
        async with self._sending:
            for batch in self._points.batches():
                if self._lost or self._ended:
                    return
                try:
                    await self.client.report_points(self.job, batch)
                except LeaseLost:
                    self._lost = True
                    return
                except MltrainError as error:
                    after = _after_refused_send(error, len(batch))
                    if after == "keep":
                        return
                    if after == "ended":
                        self._ended = self._cancel = True
                        return
                self._points.stored(batch)

    def _on_sigterm(self) -> None:
        self._cancel = True

    async def __aenter__(self) -> AsyncRun:
        if self.job.held_by_worker and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this loop
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._on_sigterm)
                self._sigterm_handled = True
        self._task = asyncio.create_task(self._background(), name=f"mltrain-run-{self.job.job_id}")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            # A send cut short keeps its points pending: they go again below (a point sent
            # twice replaces itself).
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sigterm_handled:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        if self._lost:
            return
        give_up_at = time.monotonic() + self.client._retry_for
        while self.unsent and not self._lost and not self._ended:
            await self.flush()
            if time.monotonic() > give_up_at:
                log.warning("mltrain: %d points could not be sent", self.unsent)
                break
        if self._lost or self.job.held_by_worker:
            return
        try:
            if error is not None:
                await self.client.fail(
                    self.job, f"{type(error).__name__}: {error}", failure_kind_of(error)
                )
            elif self._cancel:
                await self.client.acknowledge_cancel(self.job)
            else:
                await self.client.complete(self.job)
        except LeaseLost:
            pass
        except MltrainError as refused:
            if refused.code != "INVALID_TRANSITION":  # ended by someone else: nothing to do
                raise

    async def _background(self) -> None:
        beat_every = max(self.job.lease_seconds / 3, 0.2)
        next_beat = time.monotonic() + beat_every
        while True:
            await asyncio.sleep(min(self._flush_interval, beat_every))
            if not self.job.held_by_worker and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + beat_every
                try:
                    if await self.client.heartbeat(self.job):
                        self._cancel = True
                except LeaseLost:
                    self._lost = True
                    return
                except MltrainError as error:
                    if error.code == "INVALID_TRANSITION":
                        self._cancel = True  # ended by someone else (cancelled)
            try:
                await self.flush()
            except Exception:  # a bug must not stop the heartbeats: the job would be lost
                log.exception("mltrain: sending metric points failed; trying again later")
            if self._lost:
                return
