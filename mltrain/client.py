"""The client: GraphQL over HTTP (httpx), sync (``Client``) and async (``AsyncClient``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

import httpx

#: Seconds a call keeps retrying while the server cannot be reached (a restart), with backoff.
DEFAULT_RETRY_FOR = 60.0

_CLAIM = """
mutation($queue: String!, $worker: ID!, $lease: Int) {
  claimTrainingJob(queue: $queue, workerId: $worker, leaseSeconds: $lease) {
    __typename
    ... on TrainingJob { jobId queue hyperparameters leaseToken }
    ... on Error { code message }
  }
}"""
_HEARTBEAT = """
mutation($id: ID!, $token: String!) {
  heartbeatTrainingJob(jobId: $id, leaseToken: $token) {
    __typename
    ... on TrainingJob { status cancelRequestedAt }
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
    """A job this worker holds: its id, hyperparameters and lease token."""

    job_id: str
    queue: str
    hyperparameters: dict[str, Any]
    lease_token: str
    lease_seconds: int


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


class Client:
    """A synchronous client. ``url``: the server (``http://host:8000``; ``/graphql`` is
    added); ``api_key``: a key of role worker or higher; ``worker_id``: how this worker is
    shown (``TrainingJob.workerId``), the host name by default. Calls retry with backoff for
    ``retry_for`` seconds while the server cannot be reached (a restart)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        worker_id: str | None = None,
        timeout: float = 10.0,
        retry_for: float = DEFAULT_RETRY_FOR,
    ) -> None:
        self.url = url.rstrip("/") + "/graphql"
        self.worker_id = worker_id or socket.gethostname().split(".")[0] or "worker"
        self._retry_for = retry_for
        self._http = httpx.Client(headers=_headers(api_key), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        """Any GraphQL document; the response body."""
        deadline = time.monotonic() + self._retry_for
        delay = 0.1
        while True:
            try:
                response = self._http.post(self.url, json={"query": query, "variables": variables})
                if response.status_code < 500:
                    body: dict[str, Any] = response.json()
                    return body
            except httpx.TransportError:
                pass
            if time.monotonic() + delay > deadline:
                raise MltrainError("UNAVAILABLE", f"no answer from {self.url}")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def claim(self, queue: str = "default", lease_seconds: int = 60) -> ClaimedJob | None:
        """The oldest PENDING job of ``queue``, now held by this worker; None if none."""
        body = self.execute(_CLAIM, queue=queue, worker=self.worker_id, lease=lease_seconds)
        job = _result(body, "claimTrainingJob")
        if job is None:
            return None
        return ClaimedJob(
            job["jobId"], job["queue"], job["hyperparameters"], job["leaseToken"], lease_seconds
        )

    def heartbeat(self, job: ClaimedJob) -> bool:
        """Extend the lease; whether a cancel was asked for (or the job was cancelled).
        LeaseLost if the job was taken from this worker."""
        body = self.execute(_HEARTBEAT, id=job.job_id, token=job.lease_token)
        beat = _result(body, "heartbeatTrainingJob")
        return beat is not None and beat.get("cancelRequestedAt") is not None

    def report(self, job: ClaimedJob, metrics: Mapping[str, float]) -> None:
        body = self.execute(_REPORT, id=job.job_id, token=job.lease_token, metrics=dict(metrics))
        _result(body, "reportTrainingMetrics")

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


class Run:
    """Running one job: heartbeats in the background (every third of the lease), ``log``
    batches metrics and sends them every ``flush_interval`` seconds, ``cancel_requested``
    says the job should stop. On a clean exit the job completes (with the last metrics); on an
    exception it fails with the kind ``failure_kind_of`` gives, and the exception goes on.
    Leaving the ``with`` after a cancel was asked for acknowledges it instead."""

    def __init__(self, client: Client, job: ClaimedJob, *, flush_interval: float) -> None:
        self.client = client
        self.job = job
        self._flush_interval = flush_interval
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._background, daemon=True)
        self.last_metrics: dict[str, float] = {}

    @property
    def cancel_requested(self) -> bool:
        """A cancel was asked for (or the job was taken): stop soon and leave the ``with``."""
        return self._cancel.is_set() or self._lost.is_set()

    def log(self, step: int, **metrics: float) -> None:
        """Record this step's metrics; sent in the background (the last value of each metric,
        and ``step``, until per-step series land: docs/workers.md)."""
        with self._lock:
            self._pending.update(metrics)
            self._pending["step"] = step

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
        if batch and not self._lost.is_set():
            try:
                self.client.report(self.job, batch)
            except LeaseLost:
                self._lost.set()
                return
            self.last_metrics.update(batch)

    def __enter__(self) -> Run:
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
        if self._lost.is_set():
            return
        try:
            self.flush()
            if self._lost.is_set():
                return
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

    def _background(self) -> None:
        beat_every = max(self.job.lease_seconds / 3, 0.2)
        next_beat = time.monotonic() + beat_every
        while not self._stop.wait(min(self._flush_interval, beat_every)):
            try:
                self.flush()
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + beat_every
                    if self.client.heartbeat(self.job):
                        self._cancel.set()
            except LeaseLost:
                self._lost.set()
                return
            except MltrainError as error:
                if error.code == "INVALID_TRANSITION":
                    self._cancel.set()  # ended by someone else (cancelled)


class AsyncClient:
    """The asynchronous client: the same calls as ``Client``, awaited."""

    def __init__(
        self, url: str, api_key: str | None = None, *, worker_id: str | None = None,
        timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:  # fmt: skip
        self.url = url.rstrip("/") + "/graphql"
        self.worker_id = worker_id or socket.gethostname().split(".")[0] or "worker"
        self._http = httpx.AsyncClient(
            headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self._http.post(self.url, json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        return body

    async def claim(self, queue: str = "default", lease_seconds: int = 60) -> ClaimedJob | None:
        body = await self.execute(_CLAIM, queue=queue, worker=self.worker_id, lease=lease_seconds)
        job = _result(body, "claimTrainingJob")
        if job is None:
            return None
        return ClaimedJob(
            job["jobId"], job["queue"], job["hyperparameters"], job["leaseToken"], lease_seconds
        )

    async def heartbeat(self, job: ClaimedJob) -> bool:
        body = await self.execute(_HEARTBEAT, id=job.job_id, token=job.lease_token)
        beat = _result(body, "heartbeatTrainingJob")
        return beat is not None and beat.get("cancelRequestedAt") is not None

    async def report(self, job: ClaimedJob, metrics: Mapping[str, float]) -> None:
        body = await self.execute(
            _REPORT, id=job.job_id, token=job.lease_token, metrics=dict(metrics)
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
