"""Memory per idle subscriber of one `mltrain serve` process, and where it goes (issue 12 item 6).

    .venv/bin/python -m bench.idle_memory -n 300            # RSS per idle subscriber
    .venv/bin/python -m bench.idle_memory -n 300 --trace    # + tracemalloc, by file and line

Starts a server process (mock storage unless ``--uri``), one job, then ``--warm`` subscribers
in a client process (so one-time costs: imports, caches, the first handshake, are paid before
the first measure), one event delivered to them, and point A; then N more subscribers in a
second client process, one event delivered to all of them, and point B. Each subscriber is its
own graphql-transport-ws connection with one ``trainingJobUpdates(jobId, after)`` subscription,
the same operation as ``bench.subscriptions``. At each point the server runs a full
``gc.collect()`` (on a signal) and reports its RSS and live Python blocks; with ``--trace`` it
also takes a tracemalloc snapshot (1 frame), and the difference B - A is printed per
subscriber, grouped by file and by line. tracemalloc's own bookkeeping inflates RSS: read RSS
from a run without ``--trace``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import runpy
import signal
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.subscriptions import (
    CREATE_JOB,
    HISTORY,
    PROJECT,
    REGISTER,
    REPORT,
    START,
    ClientProcess,
    free_port,
    rss_bytes,
)

#: Environment of the server role: where a measure writes its files (``<prefix>.<k>.json``,
#: ``<prefix>.<k>.snapshot``), and whether tracemalloc runs.
MEASURE_PREFIX = "IDLE_MEMORY_PREFIX"
TRACE = "IDLE_MEMORY_TRACE"


def serve() -> None:
    """The server role: ``mltrain serve`` in this process; SIGUSR1 takes a measure."""
    prefix = os.environ[MEASURE_PREFIX]
    frames = int(os.environ.get(TRACE, "0"))
    if frames:
        tracemalloc.start(frames)
    taken = 0

    def measure(*_: object) -> None:
        nonlocal taken
        taken += 1
        gc.collect()
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(f"{prefix}.{taken}.snapshot")
        facts = {"rss": rss_bytes(os.getpid()), "blocks": sys.getallocatedblocks()}
        Path(f"{prefix}.{taken}.json").write_text(json.dumps(facts))

    signal.signal(signal.SIGUSR1, measure)
    sys.argv = ["mltrain", "serve"]
    runpy.run_module("graphql_api.cli", run_name="__main__", alter_sys=True)


def measured(path: Path) -> dict[str, Any] | None:
    if not path.exists() or not path.stat().st_size:
        return None
    facts: dict[str, Any] = json.loads(path.read_text())
    return facts


async def take_measure(server: subprocess.Popen[bytes], prefix: str, k: int) -> dict[str, Any]:
    server.send_signal(signal.SIGUSR1)
    for _ in range(1200):
        facts = measured(Path(f"{prefix}.{k}.json"))
        if facts is not None:
            return facts
        await asyncio.sleep(0.05)
    raise TimeoutError("the server took no measure")


def start_server(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.idle_memory", "--serve"]
    return subprocess.Popen(command, env=env, cwd=PROJECT, stdout=subprocess.DEVNULL)


def breakdown(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """tracemalloc's B - A per subscriber: in total, by file, by line (and by traceback)."""
    n = args.subscribers
    first = tracemalloc.Snapshot.load(f"{prefix}.1.snapshot")
    second = tracemalloc.Snapshot.load(f"{prefix}.2.snapshot")
    total = sum(s.size_diff for s in second.compare_to(first, "filename"))
    result: dict[str, Any] = {"kib_traced_per_subscriber": total / n / 1024}
    groups = ["filename", "lineno"] + (["traceback"] if args.frames > 1 else [])
    for group in groups:
        result[f"by_{group}"] = [
            {
                "where": " <- ".join(_where(f, group) for f in reversed(stat.traceback)),
                "bytes": round(stat.size_diff / n),
                "blocks": round(stat.count_diff / n, 2),
            }
            for stat in second.compare_to(first, group)[: args.top]
        ]
    return result


def remove_files(prefix: str) -> None:
    for path in Path("/tmp").glob(f"{Path(prefix).name}.*"):
        path.unlink()


async def gql(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    result: dict[str, Any] = next(iter(body["data"].values()))
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    prefix = f"/tmp/idle_memory_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "MLTRAIN_PORT": str(port),
        "MLTRAIN_LOG_LEVEL": "warning",
        "MLTRAIN_GRAPHIQL": "false",
        "MLTRAIN_MONGODB_DATABASE": f"bench_idle_{uuid.uuid4().hex[:8]}",
        "MLTRAIN_MAX_CONNECTIONS_PER_ADDRESS": "100000",
        MEASURE_PREFIX: prefix,
        TRACE: str(args.frames if args.trace else 0),
    }
    if args.uri:
        env["MLTRAIN_MONGODB_URI"] = args.uri
    else:
        env.pop("MLTRAIN_MONGODB_URI", None)
    server = start_server(env)
    clients: list[ClientProcess] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            model = await gql(
                http,
                REGISTER,
                input={"modelName": "bench", "version": "1.0.0", "modelType": "REGRESSION"},
            )
            job = await gql(
                http, CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "bench"}
            )
            job_id = job["jobId"]
            await gql(http, START, id=job_id)
            history = await http.post(
                "/graphql", json={"query": HISTORY, "variables": {"id": job_id}}
            )
            after = history.json()["data"]["trainingJob"]["history"]["edges"][-1]["cursor"]
            ws_url = f"ws://127.0.0.1:{port}/graphql"

            async def subscribe(count: int, step: int) -> None:
                client = ClientProcess(ws_url, job_id, after, count, None)
                clients.append(client)
                await client.read_until("ready", 600)
                await gql(http, REPORT, id=job_id, metrics={"step": step})
                for each in clients:
                    await each.wait_complete(step, 120)

            await subscribe(args.warm, -1)
            await asyncio.sleep(args.settle)
            before = await take_measure(server, prefix, 1)
            await subscribe(args.subscribers, -2)
            await asyncio.sleep(args.settle)
            after_n = await take_measure(server, prefix, 2)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.command("report")
        for client in clients:
            with contextlib.suppress(Exception):
                client.process.wait(timeout=60)
            if client.process.poll() is None:
                client.process.kill()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    n = args.subscribers
    result: dict[str, Any] = {
        "subscribers": n,
        "kib_rss_per_subscriber": (after_n["rss"] - before["rss"]) / n / 1024,
        "blocks_per_subscriber": (after_n["blocks"] - before["blocks"]) / n,
        "rss_before_mib": before["rss"] / 2**20,
        "rss_after_mib": after_n["rss"] / 2**20,
        "traced": args.trace,
    }
    if args.trace:
        result.update(breakdown(args, prefix))
    remove_files(prefix)
    return result


def _where(frame: tracemalloc.Frame, group: str) -> str:
    name = frame.filename
    for marker in ("site-packages/", "/lib/python3.11/", str(PROJECT) + "/"):
        if marker in name:
            name = name.split(marker, 1)[1]
    return name if group == "filename" else f"{name}:{frame.lineno}"


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--subscribers", type=int, default=300)
    parser.add_argument("--warm", type=int, default=20, help="subscribers before point A")
    parser.add_argument("--trace", action="store_true", help="tracemalloc, by file and line")
    parser.add_argument(
        "--frames", type=int, default=1, help="with --trace: frames kept; >1 adds tracebacks"
    )
    parser.add_argument("--top", type=int, default=25, help="rows of each breakdown")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before each measure")
    parser.add_argument("--uri", help="MongoDB URI (default: the in-memory mock in the server)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    result = asyncio.run(run(args))
    print(
        f"{args.subscribers} idle subscribers: {result['kib_rss_per_subscriber']:.1f} KiB RSS, "
        f"{result['blocks_per_subscriber']:.0f} Python blocks"
        + (f", {result['kib_traced_per_subscriber']:.1f} KiB traced" if args.trace else "")
        + f" per subscriber ({time.perf_counter() - started:.0f} s)"
    )
    for group in ("filename", "lineno", "traceback"):
        for row in result.get(f"by_{group}", []):
            print(f"  {row['bytes']:>6} B {row['blocks']:>6} blocks  {row['where']}")
        if f"by_{group}" in result:
            print()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
