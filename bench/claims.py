"""Claims per second (issue 15): 8 workers racing for the jobs of one queue through a real
``mltrain serve`` process, against a real MongoDB-wire server.

    .venv/bin/python -m bench.claims --mongodb-uri mongodb://127.0.0.1:27407 [--jobs 400]

Creates ``--jobs`` PENDING jobs (through the API, not timed), then 8 asyncio workers claim
until the queue is empty (each HTTP claim from 127.0.0.1, keep-alive). Reported: claims per
second over the claiming phase, claims per worker, and that every job was claimed exactly once.
Bounded in count (the jobs) and time (the server's own timeouts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
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


async def bench(url: str, jobs: int, workers: int) -> None:
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

        start = time.perf_counter()
        results = await asyncio.gather(*(worker(n) for n in range(workers)))
        elapsed = time.perf_counter() - start
    claimed = Counter(job for got in results for job in got)
    once = len(claimed) == jobs and set(claimed.values()) == {1}
    print(f"{jobs} jobs, {workers} workers: {jobs / elapsed:.0f} claims/s ({elapsed:.2f} s)")
    print(f"per worker: {[len(got) for got in results]}; each claimed exactly once: {once}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mongodb-uri", required=True)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    database = f"bench_claims_{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")},
        "MLTRAIN_MONGODB_URI": args.mongodb_uri,
        "MLTRAIN_MONGODB_DATABASE": database,
        "MLTRAIN_LOG_LEVEL": "warning",
    }
    mltrain = os.path.join(os.path.dirname(sys.executable), "mltrain")
    server = subprocess.Popen([mltrain, "serve", "--port", str(port)], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        asyncio.run(bench(f"{base}/graphql", args.jobs, args.workers))
    finally:
        server.terminate()
        server.wait(timeout=10)
        import pymongo

        pymongo.MongoClient(args.mongodb_uri).drop_database(database)


if __name__ == "__main__":
    main()
