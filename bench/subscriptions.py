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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
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
HISTORY = "query($id: ID!) { trainingJob(jobId: $id) { history { cursor } } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


async def subscriber(
    url: str, job_id: str, after: str, receipts: Receipts, compression: bool
) -> ClientConnection:
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
    payload = {"query": SUBSCRIPTION, "variables": {"jobId": job_id, "after": after}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))

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


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

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
        }
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
                return await self.measure(n, server.pid, http, f"ws://127.0.0.1:{port}/graphql")
        finally:
            server.send_signal(signal.SIGINT)  # as Ctrl-C: py-spy (if any) writes its profile
            server.wait(timeout=60)

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
        after = history.json()["data"]["trainingJob"]["history"][-1]["cursor"]
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
    parser.add_argument("--compression", action="store_true", help="permessage-deflate on")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU pinning")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    bench = Bench(args)
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
