"""Server CPU per claim (issue 15), or per lifecycle mutation (issue 12), of two checkouts,
in alternating rounds within one run.

    .venv/bin/python -m bench.claims_paired --mongodb-uri mongodb://127.0.0.1:27113 \\
        --before /tmp/before-checkout [--after .] [--rounds 8] [--jobs 150] [--mutations]

``bench.claims`` run once per tree and alternated by hand moved by ±20% between identical
runs on this shared VM (other sessions' load changes from one minute to the next), more than
the changes it was asked to show. Here both trees' ``mltrain serve`` run side by side (each
from its own checkout, on its own database of the same DocumentDB), and each round creates
``--jobs`` PENDING jobs in both (not measured), then has 8 workers claim one tree's queue
empty and then the other's, the order swapped every round (ABBA), measuring each server's CPU
time (user + system, /proc) over its claiming only. Only one server claims at a time, so the
load is one ``bench.claims``'s. With ``--mutations``, each tree's round instead has 8 clients
start, report metrics on and complete its new jobs (bench/mutations.lua's three mutations, each
client on its own jobs, a job's next step after its previous one answered), and the CPU is
per mutation. Printed: each round's ms per claim for both, then per tree the
median and the total over all rounds, and the median of the per-round ratios (after/before).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from typing import Any

import httpx

from bench.claims import CLAIM, CREATE, REGISTER, cpu_seconds, free_port

#: bench/mutations.lua's three lifecycle mutations, in order.
LIFECYCLE = (
    "mutation($id: ID!) { startTrainingJob(jobId: $id) "
    "{ __typename ... on TrainingJob { jobId status } } }",
    "mutation($id: ID!) { reportTrainingMetrics(jobId: $id, metrics: {loss: 0.5, epoch: 3}) "
    "{ __typename ... on TrainingJob { jobId status } } }",
    "mutation($id: ID!) { completeTrainingJob(jobId: $id, metrics: {accuracy: 0.9}) "
    "{ __typename ... on TrainingJob { jobId status } } }",
)
CREATE_ID = (
    'mutation($m: ID!) { createTrainingJob(input: {modelId: $m, datasetId: "d", '
    'queue: "bench"}) { ... on TrainingJob { jobId } } }'
)


def start_server(checkout: str, uri: str, database: str) -> tuple[subprocess.Popen[bytes], str]:
    """``mltrain serve`` run from ``checkout`` (``-m`` puts the working directory first on
    the path, so that tree's ``graphql_api`` is the one imported)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")},
        "MLTRAIN_MONGODB_URI": uri,
        "MLTRAIN_MONGODB_DATABASE": database,
        "MLTRAIN_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "graphql_api.cli", "serve", "--port", str(port)],
        cwd=checkout,
        env=env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return server, f"{base}/graphql"
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"the server from {checkout} did not start")
        time.sleep(0.1)


async def run(
    urls: dict[str, str],
    pids: dict[str, int],
    rounds: int,
    jobs: int,
    workers: int,
    mutations: bool,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:

        async def gql(url: str, query: str, **variables: object) -> Any:
            response = await http.post(url, json={"query": query, "variables": variables})
            return response.json()

        models = {}
        for name, url in urls.items():
            body = await gql(url, REGISTER)
            models[name] = body["data"]["registerModelVersion"]["modelId"]

        async def claim_all(url: str) -> list[str]:
            async def worker(n: int) -> list[str]:
                got: list[str] = []
                while True:
                    body = await gql(url, CLAIM, w=f"w-{n}")
                    job = body["data"]["claimTrainingJob"]
                    if job is None:
                        return got
                    got.append(job["jobId"])

            results = await asyncio.gather(*(worker(n) for n in range(workers)))
            return [job for got in results for job in got]

        async def lifecycles(url: str, ids: list[str]) -> int:
            async def client(mine: list[str]) -> None:
                for job_id in mine:
                    for operation in LIFECYCLE:
                        body = await gql(url, operation, id=job_id)
                        typename = next(iter(body["data"].values()))["__typename"]
                        if typename != "TrainingJob":
                            raise SystemExit(f"{job_id}: {body}")

            await asyncio.gather(*(client(ids[n::workers]) for n in range(workers)))
            return len(LIFECYCLE) * len(ids)

        per_claim: dict[str, list[float]] = {name: [] for name in urls}
        totals = dict.fromkeys(urls, 0.0)
        names = list(urls)
        unit = "mutation" if mutations else "claim"
        done = dict.fromkeys(urls, 0)
        for number in range(rounds):
            created: dict[str, list[str]] = {name: [] for name in urls}
            for name, url in urls.items():
                for _ in range(jobs):
                    body = await gql(url, CREATE_ID if mutations else CREATE, m=models[name])
                    if mutations:
                        created[name].append(body["data"]["createTrainingJob"]["jobId"])
            order = names if number % 2 == 0 else names[::-1]
            line = []
            for name in order:
                cpu = cpu_seconds(pids[name])
                if mutations:
                    count = await lifecycles(urls[name], created[name])
                else:
                    counts = Counter(await claim_all(urls[name]))
                    if len(counts) != jobs or set(counts.values()) != {1}:
                        raise SystemExit(f"{name}: not every job claimed exactly once")
                    count = jobs
                cpu = cpu_seconds(pids[name]) - cpu
                per_claim[name].append(1000 * cpu / count)
                totals[name] += cpu
                done[name] += count
                line.append(f"{name} {1000 * cpu / count:.2f}")
            load = os.getloadavg()[0]
            print(f"round {number + 1} (load {load:.1f}): ms per {unit} " + ", ".join(line))
    for name in names:
        median = statistics.median(per_claim[name])
        total = 1000 * totals[name] / done[name]
        print(
            f"{name}: median {median:.2f} ms per {unit}, {total:.2f} over all rounds "
            f"({1000 / total:.0f} {unit}s per server CPU-second)"
        )
    ratios = [a / b for a, b in zip(per_claim["after"], per_claim["before"], strict=True)]
    print(f"after/before per round: median {statistics.median(ratios):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mongodb-uri", required=True)
    parser.add_argument("--before", required=True, help="a checkout of the code to compare to")
    parser.add_argument("--after", default=".", help="a checkout of the changed code")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=150, help="jobs per round and tree")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument(
        "--mutations", action="store_true", help="lifecycle mutations instead of claims"
    )
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    databases = {"before": f"bench_pair_b_{suffix}", "after": f"bench_pair_a_{suffix}"}
    with ExitStack() as stack:
        urls, pids = {}, {}
        for name, checkout in (("before", args.before), ("after", args.after)):
            server, url = start_server(os.path.abspath(checkout), args.mongodb_uri, databases[name])
            stack.callback(server.wait, 10)
            stack.callback(server.terminate)
            urls[name], pids[name] = url, server.pid
        try:
            asyncio.run(run(urls, pids, args.rounds, args.jobs, args.workers, args.mutations))
        finally:
            import pymongo

            with pymongo.MongoClient(args.mongodb_uri) as client:
                for database in databases.values():
                    client.drop_database(database)


if __name__ == "__main__":
    main()
