"""Subscription fan-out benchmark: N WebSocket subscribers on one `mltrain serve`.

    .venv/bin/python -m bench.subscriptions                      # N = 100, 1,000, 5,000 (mock)
    .venv/bin/python -m bench.subscriptions -n 1000 --uri mongodb://127.0.0.1:27019   # FerretDB

For each N it starts a fresh server process (pinned to CPU 1; this client runs on CPU 0), opens
N connections with one `trainingJobUpdates(jobId)` subscription each (graphql-transport-ws), and
makes one job go through a stream of `reportTrainingMetrics` transitions over HTTP:

- latency: ``--events`` changes at ``--rate`` per second; for every (change, subscriber) pair,
  the time from the mutation's HTTP response to the subscriber's receipt of the event (both
  clocks are this process's, so they agree). A receipt can come before the response: the
  server pushes the event while it is still answering the mutation. Those count as 0.
- throughput: ``--burst`` changes back to back; events/s is changes made per second while every
  subscriber keeps up, deliveries/s is N times that (measured to the last receipt).
- memory: the server's RSS with N subscribers minus its RSS before them, per subscriber.
- CPU: the server's user+sys CPU per delivered event in the throughput phase.

The client is one Python process: with thousands of subscribers its own receive loop adds to
the latencies, so treat large-N numbers as upper bounds of the server's part.

``--client-processes K`` (issue 12 item 6) runs the subscribers in K separate client
processes instead (so their receive loops do not share this process's core), and measures
what the goal states:

    .venv/bin/python -m bench.subscriptions -n 5000 --rate 20 --events 200 --client-processes 2

- latency: ``--events`` changes at ``--rate`` per second; for every (change, subscriber) pair,
  the time from the change's ``occurredAt`` (taken just before its write commits, truncated to
  milliseconds, so this is an upper bound) to the subscriber's receipt (``time.time()`` in the
  client process; one machine, one clock). p50/p99/max over all pairs.
- server CPU: the server process's user+sys seconds during the latency phase, per second of
  wall time (cores) and per delivery; the clients' own CPU is reported apart.
- memory: the server's RSS with N idle subscribers (subscribed, one warm-up event delivered,
  1 s settled) minus its RSS before the first connection, per subscriber.
- deliveries that did not arrive within ``--drain`` seconds (60) of the last change
  (``missing``), and errors (e.g. subscriptions ended as too slow), are counted.
- client CPU: the client processes' user+sys from the reset after the warm-up to the report,
  per delivery (``client_cpu_us_per_delivery``); ``client_cpu_s`` is their total.

``--client go`` runs the Go client ``bench/wsclient`` in the client processes instead of this
module's ``client_worker`` (same arguments, same lines on stdin and stdout): a Python client
spends 35-45 µs of CPU per frame, so it cannot receive the 100,000 frames/s of 5,000
subscribers at 20 changes/s on this machine, and the Go client spends a few. It is built with
``go`` (>= 1.24) the first time and whenever its sources change, into
``~/.cache/mltrain-bench/wsclient``:

    .venv/bin/python -m bench.subscriptions -n 5000 --rate 20 --events 60 \
        --client-processes 1 --client go

``--load SECONDS`` measures instead whether the control plane keeps its latency under
subscriber overload (issue 10, item 4):

    .venv/bin/python -m bench.subscriptions --load 20 -n 1000 --load-rate 20

N connections subscribe to *all* jobs (``trainingJobUpdates`` with no filter); one job gets
``--load-rate`` metric reports per second, and a probe makes one ``reportTrainingMetrics`` on
another job, then one ``trainingJob`` query, every 100 ms, timing each round trip. The probe
runs first for ``--idle`` seconds with the load but no subscribers (the idle value); then the
N subscribers connect (load paused), and the probe runs for SECONDS with the load again.
Also: the delivery lag of the load's events (mutation response to receipt), how many
subscriptions were ended as too slow (they are not resumed: a shed client here stays
away), and the server's RSS before, under load, and ``--settle`` seconds after every client
left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

PROJECT = Path(__file__).resolve().parent.parent
SERVER_CPU = os.environ.get("SERVER_CPU", "1")
CLIENT_CPU = os.environ.get("CLIENT_CPU", "0")

ALL_JOBS = """subscription {
  trainingJobUpdates { cursor kind status occurredAt job { jobId status metrics } }
}"""
JOB = "query($id: ID!) { trainingJob(jobId: $id) { jobId status } }"
SUBSCRIPTION = """
subscription($jobId: ID!, $after: String) {
  trainingJobUpdates(jobId: $jobId, after: $after) {
    cursor kind status occurredAt job { jobId status metrics }
  }
}"""
ERRORS = "... on Error { code message }"
REGISTER = f"""mutation($input: RegisterModelVersionInput!) {{
  registerModelVersion(input: $input) {{ ... on ModelVersion {{ modelId }} {ERRORS} }} }}"""
CREATE_JOB = f"""mutation($input: CreateTrainingJobInput!) {{
  createTrainingJob(input: $input) {{ ... on TrainingJob {{ jobId }} {ERRORS} }} }}"""
START = f"""mutation($id: ID!) {{
  startTrainingJob(jobId: $id) {{ ... on TrainingJob {{ status }} {ERRORS} }} }}"""
REPORT = f"""mutation($id: ID!, $metrics: JSON!) {{
  reportTrainingMetrics(jobId: $id, metrics: $metrics) {{
    ... on TrainingJob {{ status }} {ERRORS}
  }}
}}"""
HISTORY = "query($id: ID!) { trainingJob(jobId: $id) { history(first: 100) { edges { cursor } } } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proc_field(pid: int, file: str, name: str) -> int:
    """The number after ``name:`` in ``/proc/PID/FILE`` (its first word)."""
    for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name} in /proc/{pid}/{file}")


def rss_bytes(pid: int) -> int:
    return proc_field(pid, "status", "VmRSS") * 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_syscalls(pid: int) -> int:
    """The process's write system calls so far (``syscw``: uvloop writes a socket with
    write/writev, so this counts the frames' socket writes, plus a few log and pipe writes)."""
    return proc_field(pid, "io", "syscw")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Receipts:
    """When each subscriber received the event of each step."""

    subscribers: int
    times: dict[int, list[float]] = field(default_factory=dict)
    complete: dict[int, asyncio.Event] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def expect(self, step: int) -> asyncio.Event:
        return self.complete.setdefault(step, asyncio.Event())

    def record(self, step: int, at: float) -> None:
        got = self.times.setdefault(step, [])
        got.append(at)
        if len(got) == self.subscribers:
            self.expect(step).set()


async def subscribed(url: str, payload: dict[str, Any], compression: bool) -> ClientConnection:
    """A graphql-transport-ws connection, acknowledged, with one subscription ("1") started."""
    ws = await connect(
        url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        compression="deflate" if compression else None,
        open_timeout=120,
        ping_interval=None,
        max_queue=None,
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def subscriber(
    url: str, job_id: str, after: str, receipts: Receipts, compression: bool
) -> ClientConnection:
    payload = {"query": SUBSCRIPTION, "variables": {"jobId": job_id, "after": after}}
    ws = await subscribed(url, payload, compression)

    async def read() -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                at = time.perf_counter()
                message = json.loads(raw)
                if message["type"] == "next":
                    data = message["payload"].get("data")
                    if data is None:
                        receipts.errors.append(str(message["payload"].get("errors")))
                        continue
                    receipts.record(data["trainingJobUpdates"]["job"]["metrics"]["step"], at)
                elif message["type"] == "ping":
                    await ws.send('{"type": "pong"}')
                elif message["type"] in ("error", "complete"):
                    receipts.errors.append(str(message))

    asyncio.get_running_loop().create_task(read())
    return ws


@dataclass
class LoadReceipts:
    """Receipts of the load job's events by subscribers to all jobs, and how they ended."""

    load_job: str
    next_step: int = 0
    responded: dict[int, float] = field(default_factory=dict)
    lags_ms: list[float] = field(default_factory=list)
    received: int = 0
    too_slow: int = 0
    other_errors: list[str] = field(default_factory=list)

    def record(self, update: dict[str, Any], at: float) -> None:
        self.received += 1
        if update["job"]["jobId"] != self.load_job:
            return
        step = update["job"]["metrics"].get("step")
        # Metrics keep their JSON type; accept a float step too (servers before 2026-12).
        sent = self.responded.get(int(step)) if isinstance(step, int | float) else None
        if sent is not None:
            self.lags_ms.append(max(0.0, at - sent) * 1000)


async def all_jobs_subscriber(
    url: str, receipts: LoadReceipts, compression: bool
) -> ClientConnection:
    ws = await subscribed(url, {"query": ALL_JOBS}, compression)

    async def read() -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                at = time.perf_counter()
                message = json.loads(raw)
                if message["type"] == "next":
                    payload = message["payload"]
                    if payload.get("data"):
                        receipts.record(payload["data"]["trainingJobUpdates"], at)
                    codes = [e.get("extensions", {}).get("code") for e in payload.get("errors", [])]
                    if "SUBSCRIBER_TOO_SLOW" in codes:
                        receipts.too_slow += 1
                    elif codes:
                        receipts.other_errors.append(str(codes))
                elif message["type"] == "ping":
                    await ws.send('{"type": "pong"}')
                elif message["type"] == "error":
                    receipts.other_errors.append(str(message))

    asyncio.get_running_loop().create_task(read())
    return ws


def progress(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def _epoch(occurred_at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(occurred_at.replace("Z", "+00:00")).timestamp()


async def client_worker(url: str, job_id: str, after: str, count: int) -> None:
    """One client process (``--worker``): ``count`` subscribers, commands on stdin, results
    as JSON lines on stdout."""
    latencies_ms: list[float] = []
    per_step: dict[int, int] = {}
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    readers: set[asyncio.Task[None]] = set()

    def say(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    payload = {"query": SUBSCRIPTION, "variables": {"jobId": job_id, "after": after}}

    async def one() -> ClientConnection:
        ws = await subscribed(url, payload, False)

        async def read() -> None:
            try:
                async for raw in ws:
                    at = time.time()
                    message = json.loads(raw)
                    if message["type"] == "next":
                        data = message["payload"].get("data")
                        if data is None or message.get("id") != "1":
                            errors.append(str(message)[:300])
                            continue
                        update = data["trainingJobUpdates"]
                        step = int(update["job"]["metrics"]["step"])
                        latencies_ms.append((at - _epoch(update["occurredAt"])) * 1000)
                        got = per_step[step] = per_step.get(step, 0) + 1
                        if got == count:
                            say({"complete": step})
                    elif message["type"] == "ping":
                        await ws.send('{"type": "pong"}')
                    elif message["type"] in ("error", "complete"):
                        errors.append(str(message)[:300])
            except Exception as error:  # counted, not raised
                errors.append(repr(error)[:300])

        readers.add(loop.create_task(read()))
        return ws

    opening = asyncio.Semaphore(50)

    async def open_one() -> ClientConnection:
        async with opening:
            return await one()

    started = time.perf_counter()
    sockets = await asyncio.gather(*(open_one() for _ in range(count)))
    say({"ready": time.perf_counter() - started})
    while True:
        command = (await asyncio.to_thread(sys.stdin.readline)).strip()
        if command == "reset":
            latencies_ms.clear()
            usage = os.times()
            say({"reset": True, "cpu_s": usage.user + usage.system})
        elif command in ("report", ""):
            break
    usage = os.times()
    say(
        {
            "latencies_ms": [round(v, 2) for v in latencies_ms],
            "per_step": per_step,
            "errors": errors[:20],
            "error_count": len(errors),
            "cpu_s": usage.user + usage.system,
        }
    )
    for ws in sockets:
        with contextlib.suppress(Exception):
            await ws.close()


GO_CLIENT = PROJECT / "bench" / "wsclient"


def go_client() -> Path:
    """The Go client (``bench/wsclient``), built once per version of its sources into
    ``~/.cache/mltrain-bench/wsclient``."""
    go = shutil.which("go")
    if go is None and Path("/usr/local/go/bin/go").is_file():
        go = "/usr/local/go/bin/go"
    if go is None:
        raise SystemExit(
            "--client go: no `go` on PATH (nor /usr/local/go/bin/go); install Go >= 1.24 "
            "to build bench/wsclient, or use --client python"
        )
    sources = sorted(
        p
        for p in GO_CLIENT.iterdir()
        if p.name in ("go.mod", "go.sum") or (p.suffix == ".go" and not p.stem.endswith("_test"))
    )
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    cache = cache / "mltrain-bench" / "wsclient"
    binary = cache / f"wsclient-{digest.hexdigest()[:16]}"
    if binary.is_file():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    progress(f"building the Go client into {binary}")
    partial = binary.with_suffix(f".{os.getpid()}.tmp")
    built = subprocess.run(
        [go, "build", "-o", str(partial), "."], cwd=GO_CLIENT, capture_output=True, text=True
    )
    if built.returncode != 0:
        raise SystemExit(f"--client go: `go build` in {GO_CLIENT} failed:\n{built.stderr}")
    partial.replace(binary)
    for old in cache.glob("wsclient-*"):
        if old != binary:
            old.unlink(missing_ok=True)
    return binary


class ClientProcess:
    """A ``--worker`` child process and the lines it writes (read by one thread, so that a
    wait that times out loses no line): this module's ``client_worker``, or with ``go`` the
    Go client, which takes the same arguments and speaks the same lines."""

    def __init__(
        self,
        url: str,
        job_id: str,
        after: str,
        count: int,
        cpu: str | None,
        go: Path | None = None,
    ) -> None:
        worker = [str(go)] if go else [sys.executable, "-m", "bench.subscriptions", "--worker"]
        command = [*worker, url, job_id, after, str(count)]
        if cpu is not None:
            command = ["taskset", "-c", cpu, *command]
        self.count = count
        self.process = subprocess.Popen(
            command, cwd=PROJECT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.completed: set[int] = set()
        self.lines: asyncio.Queue[bytes] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in iter(self.process.stdout.readline, b""):
                loop.call_soon_threadsafe(self.lines.put_nowait, line)
            loop.call_soon_threadsafe(self.lines.put_nowait, b"")

        threading.Thread(target=pump, daemon=True).start()

    async def read_until(self, key: str, within: float) -> dict[str, Any]:
        deadline = time.perf_counter() + within
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"client process: no {key!r} within {within} s")
            line = await asyncio.wait_for(self.lines.get(), remaining)
            if not line:
                raise RuntimeError("client process ended early")
            message: dict[str, Any] = json.loads(line)
            if "complete" in message:
                self.completed.add(int(message["complete"]))
            if key in message:
                return message

    async def wait_complete(self, step: int, within: float) -> None:
        deadline = time.perf_counter() + within
        while step not in self.completed:
            await self.read_until("complete", deadline - time.perf_counter())

    def command(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()


class Bench:
    def __init__(self, args: argparse.Namespace, go: Path | None = None) -> None:
        self.args = args
        self.go = go  # the Go client's binary (--client go)

    async def gql(self, http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
        response = await http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        result: dict[str, Any] = next(iter(body["data"].values()))
        assert "code" not in result, result
        return result

    def start_server(self, port: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "MLTRAIN_PORT": str(port),
            "MLTRAIN_LOG_LEVEL": "warning",
            "MLTRAIN_GRAPHIQL": "false",
            "MLTRAIN_MONGODB_DATABASE": f"bench_subs_{uuid.uuid4().hex[:8]}",
            # Every subscriber here connects from 127.0.0.1: lift the open-mode cap per address.
            "MLTRAIN_MAX_CONNECTIONS_PER_ADDRESS": "100000",
        }
        # permessage-deflate only where the client offers it and the server accepts it.
        env["MLTRAIN_WS_PER_MESSAGE_DEFLATE"] = "true" if self.args.compression else "false"
        if self.args.uri:
            env["MLTRAIN_MONGODB_URI"] = self.args.uri
        else:
            env.pop("MLTRAIN_MONGODB_URI", None)
        command = [sys.executable, "-m", "graphql_api.cli", "serve"]
        # e.g. "py-spy record -f raw -o /tmp/subs.txt --" to profile (RSS/CPU columns are then
        # the wrapper's, not the server's).
        prefix = os.environ.get("BENCH_SERVER_PREFIX", "").split()
        command = [*prefix, *command]
        if self.args.pin:
            command = ["taskset", "-c", SERVER_CPU, *command]
        return subprocess.Popen(command, env=env, cwd=PROJECT, stdout=subprocess.DEVNULL)

    async def probe(
        self, http: httpx.AsyncClient, job_id: str, seconds: float, into: dict[str, list[float]]
    ) -> None:
        """A mutation and a query every 100 ms for ``seconds``; round trips in ms."""
        end = time.perf_counter() + seconds
        step = 0
        while time.perf_counter() < end:
            began = time.perf_counter()
            try:
                await self.gql(http, REPORT, id=job_id, metrics={"probe": step})
                into["mutation"].append((time.perf_counter() - began) * 1000)
            except (httpx.HTTPError, AssertionError):
                into["failed"].append(time.perf_counter() - began)
            began = time.perf_counter()
            try:
                await self.gql(http, JOB, id=job_id)
                into["query"].append((time.perf_counter() - began) * 1000)
            except (httpx.HTTPError, AssertionError):
                into["failed"].append(time.perf_counter() - began)
            step += 1
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - began)))

    async def generate_load(
        self, http: httpx.AsyncClient, receipts: LoadReceipts, stop: asyncio.Event
    ) -> None:
        interval = 1 / self.args.load_rate
        next_at = time.perf_counter()
        while not stop.is_set():
            step = receipts.next_step
            receipts.next_step += 1
            with contextlib.suppress(httpx.HTTPError, AssertionError):
                await self.gql(http, REPORT, id=receipts.load_job, metrics={"step": step})
                receipts.responded[step] = time.perf_counter()
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def measure_load(
        self, n: int, pid: int, http: httpx.AsyncClient, ws_url: str
    ) -> dict[str, Any]:
        args = self.args
        model = await self.gql(
            http,
            REGISTER,
            input={"modelName": "bench", "version": "1.0.0", "modelType": "REGRESSION"},
        )
        jobs = []
        for _ in range(2):
            job = await self.gql(
                http, CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "bench"}
            )
            await self.gql(http, START, id=job["jobId"])
            jobs.append(job["jobId"])
        load_job, probe_job = jobs
        receipts = LoadReceipts(load_job)
        # A separate client for the load, so the probe's connection only carries the probe.
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=60) as load_http:

            async def probed(seconds: float) -> dict[str, list[float]]:
                """Probe for ``seconds`` while the load runs."""
                stop = asyncio.Event()
                load = asyncio.create_task(self.generate_load(load_http, receipts, stop))
                found: dict[str, list[float]] = {"mutation": [], "query": [], "failed": []}
                await self.probe(http, probe_job, seconds, found)
                stop.set()
                await load
                return found

            idle = await probed(args.idle)
            rss_idle = rss_bytes(pid)
            # Subscribers connect between the phases: the handshakes are not what is measured.
            opening = asyncio.Semaphore(100)

            async def open_one() -> ClientConnection:
                async with opening:
                    return await all_jobs_subscriber(ws_url, receipts, args.compression)

            started = time.perf_counter()
            sockets = await asyncio.gather(*(open_one() for _ in range(n)))
            opened_in = time.perf_counter() - started
            receipts.lags_ms.clear()
            loaded = await probed(args.load)
            rss_loaded = rss_bytes(pid)
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        await asyncio.sleep(args.settle)
        rss_after = rss_bytes(pid)

        def p(values: list[float], q: float) -> float:
            return percentile(values, q) if values else float("nan")

        return {
            "subscribers": n,
            "load_rate": args.load_rate,
            "open_s": opened_in,
            "idle_mutation_p50_ms": p(idle["mutation"], 0.5),
            "idle_mutation_p99_ms": p(idle["mutation"], 0.99),
            "idle_query_p99_ms": p(idle["query"], 0.99),
            "mutation_p50_ms": p(loaded["mutation"], 0.5),
            "mutation_p99_ms": p(loaded["mutation"], 0.99),
            "query_p99_ms": p(loaded["query"], 0.99),
            "probe_failures": len(loaded["failed"]),
            "delivery_lag_p50_ms": p(receipts.lags_ms, 0.5),
            "delivery_lag_p99_ms": p(receipts.lags_ms, 0.99),
            "deliveries": receipts.received,
            "shed_too_slow": receipts.too_slow,
            "other_errors": len(receipts.other_errors),
            "rss_idle_mib": rss_idle / 2**20,
            "rss_loaded_mib": rss_loaded / 2**20,
            "rss_after_mib": rss_after / 2**20,
        }

    async def run(self, n: int) -> dict[str, Any]:
        port = free_port()
        server = self.start_server(port)
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                for _ in range(300):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
                ws_url = f"ws://127.0.0.1:{port}/graphql"
                if self.args.load:
                    return await self.measure_load(n, server.pid, http, ws_url)
                if self.args.client_processes:
                    return await self.measure_processes(n, server.pid, http, ws_url)
                return await self.measure(n, server.pid, http, ws_url)
        finally:
            server.send_signal(signal.SIGINT)  # as Ctrl-C: py-spy (if any) writes its profile
            server.wait(timeout=60)

    async def measure_processes(
        self, n: int, pid: int, http: httpx.AsyncClient, ws_url: str
    ) -> dict[str, Any]:
        """Subscribers in ``--client-processes`` processes; latency from the change's time."""
        args = self.args
        model = await self.gql(
            http,
            REGISTER,
            input={"modelName": "bench", "version": "1.0.0", "modelType": "REGRESSION"},
        )
        job = await self.gql(
            http, CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "bench"}
        )
        job_id = job["jobId"]
        await self.gql(http, START, id=job_id)
        history = await http.post("/graphql", json={"query": HISTORY, "variables": {"id": job_id}})
        after = history.json()["data"]["trainingJob"]["history"]["edges"][-1]["cursor"]
        await asyncio.sleep(1.0)
        rss_before = rss_bytes(pid)
        k = args.client_processes
        counts = [n // k + (1 if i < n % k else 0) for i in range(k)]
        cpu = CLIENT_CPU if args.pin else None
        clients = [ClientProcess(ws_url, job_id, after, c, cpu, self.go) for c in counts if c]
        try:
            started = time.perf_counter()
            for client in clients:
                await client.read_until("ready", 900)
            opened_in = time.perf_counter() - started
            progress(f"{n} subscribed in {opened_in:.1f} s; warm-up event")
            # Step -1 proves every subscription is live (each resumes after START).
            await self.gql(http, REPORT, id=job_id, metrics={"step": -1})
            warm_complete = True
            try:
                for client in clients:
                    await client.wait_complete(-1, args.drain)
            except TimeoutError:
                warm_complete = False  # measured anyway: the report says who got what
                progress("the warm-up event did not reach every subscriber")
            await asyncio.sleep(1.0)
            rss_idle = rss_bytes(pid)
            client_cpu_before = 0.0
            for client in clients:
                client.command("reset")
                client_cpu_before += (await client.read_until("reset", 60)).get("cpu_s", 0.0)

            progress(f"idle RSS {rss_idle / 2**20:.0f} MiB; {args.events} changes at {args.rate}/s")
            cpu_before = cpu_seconds(pid)
            writes_before = write_syscalls(pid)
            began = time.perf_counter()
            next_at = began
            for step in range(args.events):
                await self.gql(http, REPORT, id=job_id, metrics={"step": step})
                next_at += 1 / args.rate
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            made_in = time.perf_counter() - began
            last = args.events - 1
            progress(f"changes made in {made_in:.1f} s; waiting for the deliveries")
            with contextlib.suppress(TimeoutError):
                for client in clients:
                    await client.wait_complete(last, args.drain)
            elapsed = time.perf_counter() - began
            server_cpu = cpu_seconds(pid) - cpu_before
            server_writes = write_syscalls(pid) - writes_before
            rss_loaded = rss_bytes(pid)
            reports = []
            for client in clients:
                client.command("report")
                reports.append(await client.read_until("latencies_ms", 120))
        finally:
            for client in clients:
                with contextlib.suppress(Exception):
                    client.command("report")  # a worker waiting for a command ends
                with contextlib.suppress(Exception):
                    client.process.wait(timeout=60)
                if client.process.poll() is None:
                    client.process.kill()
        latencies = [v for report in reports for v in report["latencies_ms"]]
        client_cpu = sum(r["cpu_s"] for r in reports)
        receipts_cpu = client_cpu - client_cpu_before
        steps = range(args.events)
        delivered = sum(int(r["per_step"].get(str(s), 0)) for r in reports for s in steps)

        def p(q: float) -> float:
            return percentile(latencies, q) if latencies else float("nan")

        return {
            "subscribers": n,
            "client_processes": len(clients),
            "rate": args.rate,
            "events": args.events,
            "open_s": opened_in,
            "warm_up_reached_all": warm_complete,
            "warm_up_received": sum(int(r["per_step"].get("-1", 0)) for r in reports),
            "p50_ms": p(0.5),
            "p99_ms": p(0.99),
            "max_ms": max(latencies) if latencies else float("nan"),
            "offered_per_s": args.events / made_in,
            "missing": n * args.events - delivered,
            "server_cpu_cores": server_cpu / elapsed,
            "server_cpu_ms_per_delivery": server_cpu * 1000 / max(1, delivered),
            "server_writes_per_delivery": server_writes / max(1, delivered),
            "client": "go" if self.go else "python",
            "client_cpu_s": client_cpu,
            # The clients' CPU from the reset to the report (the changes' receipts, not the
            # handshakes), per delivery counted.
            "client_cpu_us_per_delivery": receipts_cpu * 1e6 / max(1, delivered),
            "kib_per_idle_subscriber": (rss_idle - rss_before) / n / 1024,
            "rss_before_mib": rss_before / 2**20,
            "rss_idle_mib": rss_idle / 2**20,
            "rss_loaded_mib": rss_loaded / 2**20,
            "errors": sum(r["error_count"] for r in reports),
            "error_samples": [e for r in reports for e in r["errors"]][:5],
        }

    async def measure(
        self, n: int, pid: int, http: httpx.AsyncClient, ws_url: str
    ) -> dict[str, Any]:
        args = self.args
        model = await self.gql(
            http,
            REGISTER,
            input={"modelName": "bench", "version": "1.0.0", "modelType": "REGRESSION"},
        )
        job = await self.gql(
            http, CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "bench"}
        )
        job_id = job["jobId"]
        await self.gql(http, START, id=job_id)
        history = await http.post("/graphql", json={"query": HISTORY, "variables": {"id": job_id}})
        after = history.json()["data"]["trainingJob"]["history"]["edges"][-1]["cursor"]
        await asyncio.sleep(0.5)
        rss_before = rss_bytes(pid)

        receipts = Receipts(n)
        opening = asyncio.Semaphore(100)

        async def open_one() -> ClientConnection:
            async with opening:
                return await subscriber(ws_url, job_id, after, receipts, args.compression)

        started = time.perf_counter()
        sockets = await asyncio.gather(*(open_one() for _ in range(n)))
        opened_in = time.perf_counter() - started
        # Step -1 proves every subscription is live (it resumes after START, so none misses it).
        warm = receipts.expect(-1)
        await self.gql(http, REPORT, id=job_id, metrics={"step": -1})
        await asyncio.wait_for(warm.wait(), 120)
        await asyncio.sleep(1.0)
        rss_after = rss_bytes(pid)

        # Latency: a steady stream of transitions.
        responded: dict[int, float] = {}
        for step in range(args.events):
            receipts.expect(step)
            sent = time.perf_counter()
            await self.gql(http, REPORT, id=job_id, metrics={"step": step})
            responded[step] = time.perf_counter()
            await asyncio.sleep(max(0.0, 1 / args.rate - (responded[step] - sent)))
        for step in range(args.events):
            await asyncio.wait_for(receipts.expect(step).wait(), 120)
        latencies = [
            max(0.0, at - responded[step]) * 1000
            for step in range(args.events)
            for at in receipts.times[step]
        ]

        # Throughput: a burst, back to back; done when every subscriber has the last one.
        first = 1_000_000
        last = first + args.burst - 1
        done = receipts.expect(last)
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        for step in range(first, last + 1):
            await self.gql(http, REPORT, id=job_id, metrics={"step": step})
        made_in = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        delivered = sum(len(receipts.times.get(s, [])) for s in range(first, last + 1))

        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        return {
            "subscribers": n,
            "open_s": opened_in,
            "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies),
            "events_per_s": args.burst / elapsed,
            "mutations_per_s": args.burst / made_in,
            "deliveries_per_s": delivered / elapsed,
            "cpu_ms_per_delivery": cpu * 1000 / delivered,
            "kib_per_subscriber": (rss_after - rss_before) / n / 1024,
            "rss_mib": rss_after / 2**20,
            "errors": len(receipts.errors),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--subscribers", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--events", type=int, default=20, help="changes in the latency phase")
    parser.add_argument("--rate", type=float, default=2.0, help="changes/s in the latency phase")
    parser.add_argument("--burst", type=int, default=50, help="changes in the throughput phase")
    parser.add_argument("--uri", help="MongoDB URI (default: the in-memory mock in the server)")
    parser.add_argument(
        "--compression",
        action="store_true",
        help="clients offer permessage-deflate, and the server accepts it",
    )
    parser.add_argument("--load", type=float, help="seconds of the overload measurement")
    parser.add_argument("--load-rate", type=float, default=20.0, help="changes/s under --load")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds probed without load")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before RSS after")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU pinning")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=0,
        help="run the subscribers in this many client processes; latency from occurredAt",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=60.0,
        help="with --client-processes: seconds to wait for the last change's deliveries",
    )
    parser.add_argument(
        "--client",
        choices=["python", "go"],
        default="python",
        help="with --client-processes: the client processes' program (go: bench/wsclient)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, job_id, after, count = sys.argv[2:6]
        asyncio.run(client_worker(url, job_id, after, int(count)))
        return
    args = parser.parse_args()
    if args.client == "go" and not args.client_processes:
        parser.error("--client go needs --client-processes K (the Go client is a client process)")
    go = go_client() if args.client == "go" else None
    if args.pin:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    bench = Bench(args, go)
    if args.load or args.client_processes:
        load_rows = []
        for n in args.subscribers:
            row = asyncio.run(bench.run(n))
            load_rows.append(row)
            print(json.dumps(row), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(load_rows, indent=2))
        return
    rows = []
    print(
        f"{'subscribers':>11} {'open s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'events/s':>9} {'deliv/s':>9} {'CPU ms/deliv':>12} {'KiB/sub':>8} {'RSS MiB':>8} "
        f"{'errors':>6}",
        flush=True,
    )
    for n in args.subscribers:
        row = asyncio.run(bench.run(n))
        rows.append(row)
        print(
            f"{row['subscribers']:>11} {row['open_s']:>7.1f} {row['p50_ms']:>7.1f} "
            f"{row['p99_ms']:>7.1f} {row['max_ms']:>7.1f} {row['events_per_s']:>9.1f} "
            f"{row['deliveries_per_s']:>9.0f} {row['cpu_ms_per_delivery']:>12.3f} "
            f"{row['kib_per_subscriber']:>8.1f} {row['rss_mib']:>8.1f} {row['errors']:>6}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
