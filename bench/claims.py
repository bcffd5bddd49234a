"""Claims per second (issue 15): 8 workers racing for the jobs of one queue through a real
``mltrain serve`` process, against a real MongoDB-wire server.

    .venv/bin/python -m bench.claims --mongodb-uri mongodb://127.0.0.1:27407 [--jobs 400]

Creates ``--jobs`` PENDING jobs (through the API, not timed), then 8 asyncio workers claim
until the queue is empty (each HTTP claim from 127.0.0.1, keep-alive). Reported: claims per
second over the claiming phase, the server process's CPU time per claim (user + system, from
/proc: meaningful on a loaded machine, where wall time is not), claims per worker, and that
every job was claimed exactly once. Bounded in count (the jobs) and time (the server's own
timeouts). ``--profile FILE`` runs the server under cProfile and writes its stats there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any

import httpx

CLAIM = (
    'mutation($w: ID!) { claimTrainingJob(queue: "bench", workerId: $w) '
    "{ __typename ... on TrainingJob { jobId } } }"
)
REGISTER = (
    'mutation { registerModelVersion(input: {modelName: "bench", version: "1.0.0", '
    "modelType: REGRESSION}) { ... on ModelVersion { modelId } } }"
)
CREATE = (
    'mutation($m: ID!) { createTrainingJob(input: {modelId: $m, datasetId: "d", '
    'queue: "bench"}) { __typename } }'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench(
    url: str, jobs: int, workers: int, server_pid: int, py_spy: str | None = None
) -> None:
    # bench/ is outside mypy (pyproject); the JSON answers are read as Any.
    async with httpx.AsyncClient(timeout=30) as http:

        async def gql(query: str, **variables: object) -> Any:
            response = await http.post(url, json={"query": query, "variables": variables})
            return response.json()

        model = await gql(REGISTER)
        model_id = model["data"]["registerModelVersion"]["modelId"]
        for _ in range(jobs):
            await gql(CREATE, m=model_id)

        async def worker(n: int) -> list[str]:
            got: list[str] = []
            while True:
                body = await gql(CLAIM, w=f"w-{n}")
                job = body["data"]["claimTrainingJob"]
                if job is None:
                    return got
                got.append(job["jobId"])

        spy = None
        if py_spy:
            # Sampled from outside the server, the claiming phase only (not the set-up).
            spy = await asyncio.create_subprocess_exec(
                *("py-spy", "record", "--pid", str(server_pid), "--rate", "250"),
                *("--format", "raw", "--nonblocking", "-o", py_spy),
                stdout=subprocess.DEVNULL,
            )
            await asyncio.sleep(1)  # py-spy attaching
        cpu_before = cpu_seconds(server_pid)
        start = time.perf_counter()
        results = await asyncio.gather(*(worker(n) for n in range(workers)))
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(server_pid) - cpu_before
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its samples and exits
            await asyncio.wait_for(spy.wait(), 30)
    claimed = Counter(job for got in results for job in got)
    once = len(claimed) == jobs and set(claimed.values()) == {1}
    print(f"{jobs} jobs, {workers} workers: {jobs / elapsed:.0f} claims/s ({elapsed:.2f} s)")
    print(
        f"server CPU: {cpu * 1000 / jobs:.2f} ms per claim ({cpu:.2f} s in all), "
        f"{jobs / cpu:.0f} claims per server CPU-second"
    )
    print(f"per worker: {[len(got) for got in results]}; each claimed exactly once: {once}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mongodb-uri", required=True)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--profile", help="write the server's cProfile stats to this file")
    parser.add_argument(
        "--py-spy",
        help="sample the server with py-spy (on PATH) while it claims, raw stacks to this file",
    )
    parser.add_argument(
        "--server-cpu",
        type=int,
        help="pin the server to this one core (taskset), the workers and the database to the "
        "others: the issue's 'on one server core' as the machine enforces it",
    )
    args = parser.parse_args()
    port = free_port()
    database = f"bench_claims_{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")},
        "MLTRAIN_MONGODB_URI": args.mongodb_uri,
        "MLTRAIN_MONGODB_DATABASE": database,
        "MLTRAIN_LOG_LEVEL": "warning",
    }
    serve = ["-m", "graphql_api.cli", "serve", "--port", str(port)]
    if args.profile:
        serve = ["-m", "cProfile", "-o", args.profile, *serve]
    command = [sys.executable, *serve]
    if args.server_cpu is not None:
        command = ["taskset", "-c", str(args.server_cpu), *command]
        others = sorted(set(os.sched_getaffinity(0)) - {args.server_cpu})
        if others:  # this process (the workers) keeps off the server's core
            os.sched_setaffinity(0, others)
    server = subprocess.Popen(command, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + (120 if args.profile else 30)
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        asyncio.run(bench(f"{base}/graphql", args.jobs, args.workers, server.pid, args.py_spy))
    finally:
        # SIGINT: a clean shutdown, so that cProfile writes its stats.
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)
        import pymongo

        pymongo.MongoClient(args.mongodb_uri).drop_database(database)


if __name__ == "__main__":
    main()
