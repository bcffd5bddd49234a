"""Events lost to kill -9: ``mltrain serve`` under a bounded job-mutation load, killed with
SIGKILL a few times and restarted, then every job's events counted against its changes.

Each job goes CREATED -> STARTED -> METRICS_REPORTED x N (each report adds its own metric key,
so the stored job says how many reports landed) -> COMPLETED. After the last restart the server
is given a few seconds (its outbox sweep), then for each job::

    changes = 1 (created) + started + reports landed + completed
    lost    = changes - events in its history   (negative: duplicates)

Run against a real server (127.0.0.1 only), from the worktree::

    .venv/bin/python -m bench.kill_events --uri mongodb://127.0.0.1:27408 --kills 3
    .venv/bin/python -m bench.kill_events --uri ... --code /path/to/a/checkout/of/main
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

PROJECT = Path(__file__).resolve().parent.parent

JOB_STEPS = """
mutation R($name: String!) { registerModelVersion(input: {modelName: $name, version: "1.0.0",
  modelType: CLASSIFICATION}) { ... on ModelVersion { modelId } } }
"""
CREATE = """mutation($m: ID!, $j: ID!) { createTrainingJob(input: {modelId: $m, datasetId: "d",
  jobId: $j}) { __typename } }"""
START = "mutation($j: ID!) { startTrainingJob(jobId: $j) { __typename } }"
REPORT = """mutation($j: ID!, $m: JSON!) { reportTrainingMetrics(jobId: $j, metrics: $m) {
  __typename } }"""
COMPLETE = "mutation($j: ID!) { completeTrainingJob(jobId: $j) { __typename } }"
JOB = """query($j: ID!) { trainingJob(jobId: $j) { status metrics
  history(first: 100) { totalCount } } }"""


def start(port: int, env: dict[str, str], code: Path) -> subprocess.Popen[bytes]:
    """``mltrain serve`` from the package in ``code`` (a checkout; another branch's too)."""
    runner = (
        f"import sys; sys.path.insert(0, {str(code)!r}); from graphql_api.cli import main; main()"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", runner, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not come up")


async def worker(client: httpx.AsyncClient, model_id: str, jobs: list[str], stop: float) -> None:
    async def call(query: str, **variables: Any) -> None:
        try:
            await client.post("/graphql", json={"query": query, "variables": variables})
        except httpx.TransportError:
            await asyncio.sleep(0.05)  # the server is down: the change may or may not be made

    while time.monotonic() < stop:
        job_id = f"k-{uuid.uuid4().hex[:10]}"
        jobs.append(job_id)
        await call(CREATE, m=model_id, j=job_id)
        await call(START, j=job_id)
        for step in range(random.randint(2, 6)):
            await call(REPORT, j=job_id, m={f"s{step}": float(step)})
        await call(COMPLETE, j=job_id)


async def run(uri: str, kills: int, seconds: float, workers: int, code: Path) -> None:
    port = 18000 + random.randint(0, 999)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    env.update(
        MLTRAIN_MONGODB_URI=uri,
        MLTRAIN_MONGODB_DATABASE=f"kill_{uuid.uuid4().hex[:8]}",
    )
    server = start(port, env, code)
    jobs: list[str] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        reply = await client.post(
            "/graphql", json={"query": JOB_STEPS, "variables": {"name": "kill-bench"}}
        )
        model_id = reply.json()["data"]["registerModelVersion"]["modelId"]
        for _ in range(kills):
            stop = time.monotonic() + seconds
            load = [
                asyncio.create_task(worker(client, model_id, jobs, stop)) for _ in range(workers)
            ]
            await asyncio.sleep(seconds * random.uniform(0.4, 0.8))
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            server = start(port, env, code)
            await asyncio.gather(*load)
        await asyncio.sleep(8)  # the restarted server's outbox sweep (1 s interval, 5 s grace)
        lost = duplicated = changes_total = 0
        for job_id in jobs:
            body = await client.post("/graphql", json={"query": JOB, "variables": {"j": job_id}})
            job = body.json()["data"]["trainingJob"]
            if job is None:
                continue
            status = job["status"]
            changes = 1 + (status != "PENDING") + len(job["metrics"]) + (status == "COMPLETED")
            events = job["history"]["totalCount"]
            changes_total += changes
            lost += max(changes - events, 0)
            duplicated += max(events - changes, 0)
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=15)
    print(
        f"kills={kills} jobs={len(jobs)} changes={changes_total} "
        f"lost_events={lost} duplicated_events={duplicated}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="load per kill")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument(
        "--code", type=Path, default=PROJECT, help="the checkout whose server to run (before/after)"
    )
    args = parser.parse_args()
    if "127.0.0.1" not in args.uri and "localhost" not in args.uri:
        sys.exit("127.0.0.1 only")
    asyncio.run(run(args.uri, args.kills, args.seconds, args.workers, args.code))


if __name__ == "__main__":
    main()
