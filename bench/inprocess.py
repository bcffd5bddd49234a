"""Server CPU per request without the network: the ASGI app called directly, in one process.

    .venv/bin/python -m bench.inprocess                      # dashboard, trainingJob, floor
    .venv/bin/python -m bench.inprocess dashboard --profile  # cProfile: the top costs
    .venv/bin/python -m bench.inprocess --compare DIR        # interleaved: this tree vs DIR's

The harness (``bench.run``) measures what a client sees through uvicorn; this measures what one
request costs the process, with far less noise, so changes of a few percent show. Each round
sends ``--requests`` requests of one operation through the whole app (Starlette, the API-key
middleware, Strawberry, storage, the mock) and takes the process CPU time; the best round
counts, since noise on a shared VM only ever adds. ``--compare`` runs
this module from another copy of the project (for example ``git worktree add /tmp/before HEAD~1``)
in alternating subprocesses, so both trees see the same machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", PROJECT.parent / "shared" / "bench-peers"))
OPERATIONS = ("dashboard", "job", "floor")

Sender = Callable[[], Awaitable[bytes]]


async def _app_sender(app: Any, body: dict[str, Any]) -> Sender:
    payload = json.dumps(body).encode()
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "app": app,
        "state": {},
    }

    async def send_one() -> bytes:
        chunks: list[bytes] = []
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(dict(scope), receive, send)
        return b"".join(chunks)  # decoded only by the checks, outside the timed rounds

    return send_one


async def _rounds(send_one: Sender, requests: int, rounds: int, profile: bool) -> float:
    samples = []
    for _ in range(rounds):
        profiler = cProfile.Profile() if profile else None
        start = time.process_time()
        if profiler:
            profiler.enable()
        for _ in range(requests):
            await send_one()
        if profiler:
            profiler.disable()
        samples.append((time.process_time() - start) * 1000 / requests)
        if profiler:
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
    return min(samples)  # the least disturbed round: noise on a shared VM only adds


async def _measure_floor(requests: int, rounds: int, profile: bool) -> float:
    """The peers' cached-Strawberry floor app (50 in-memory jobs), through the same calls."""
    sys.path.insert(0, str(PEERS_DIR))
    import bodies  # type: ignore[import-not-found]
    import floor_apps  # type: ignore[import-not-found]

    app = floor_apps.gql_cached_app
    send_one = await _app_sender(app, bodies.FLOOR_QUERY)
    answer = json.loads(await send_one())
    assert len(answer["data"]["jobs"]) == 50, answer
    for _ in range(20):
        await send_one()
    return await _rounds(send_one, requests, rounds, profile)


async def _measure(
    jobs: int, operations: list[str], requests: int, rounds: int, profile: bool
) -> dict[str, float]:
    from bench.queries import BODIES, check_dashboard, check_job
    from bench.seed import seed
    from graphql_api.app import create_app
    from graphql_api.settings import Settings
    from graphql_api.storage.mongo import MongoStorage

    bodies = {"dashboard": BODIES["mltrain_dashboard.json"], "job": BODIES["mltrain_job.json"]}
    checks = {"dashboard": check_dashboard, "job": check_job}
    storage = MongoStorage.connect(None, "bench")
    app = create_app(Settings(), storage=storage)
    results: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        await seed(storage, jobs, 0)
        senders = {op: await _app_sender(app, bodies[op]) for op in operations if op in bodies}
        for op, send_one in senders.items():
            checks[op](json.loads(await send_one()))
            for _ in range(20):  # warm the parser/validation caches and the interpreter
                await send_one()
        for op, send_one in senders.items():
            results[op] = await _rounds(send_one, requests, rounds, profile)
    await storage.close()
    if "floor" in operations:
        results["floor"] = await _measure_floor(requests, rounds, profile)
    return results


def _compare(other: Path, args: argparse.Namespace) -> None:
    trees = {"this": PROJECT, "other": other.resolve()}
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for _ in range(args.alternations):
        for name, tree in trees.items():
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.inprocess",
                    "--json",
                    "--jobs",
                    str(args.jobs),
                    "--requests",
                    str(args.requests),
                    "--rounds",
                    "3",
                    *args.operations,
                ],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree)},
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            for op, ms in json.loads(out.splitlines()[-1]).items():
                samples[name].setdefault(op, []).append(ms)
    for op in args.operations:
        this = statistics.median(samples["this"][op])
        that = statistics.median(samples["other"][op])
        print(
            f"{op:10s} this tree {this:7.3f} ms/req   {other}: {that:7.3f} ms/req   "
            f"({(this / that - 1) * 100:+.1f}%; medians of {args.alternations} alternations)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "operations",
        nargs="*",
        help="dashboard, job and/or floor (the peers' cached-Strawberry floor); default all",
    )
    parser.add_argument("--jobs", type=int, default=100, help="jobs seeded in the mock")
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print cProfile top costs")
    parser.add_argument("--compare", type=Path, help="another project tree to interleave with")
    parser.add_argument("--alternations", type=int, default=6)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    args.operations = args.operations or list(OPERATIONS)
    if unknown := set(args.operations) - set(OPERATIONS):
        parser.error(f"unknown operations {sorted(unknown)}: choose from {', '.join(OPERATIONS)}")
    if args.compare:
        _compare(args.compare, args)
        return
    import logging

    logging.disable(logging.WARNING)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        run = asyncio.run
    else:
        run = uvloop.run
    results = run(_measure(args.jobs, args.operations, args.requests, args.rounds, args.profile))
    if args.json:
        print(json.dumps(results))
    else:
        for op, ms in results.items():
            print(
                f"{op:10s} {ms:7.3f} ms of CPU per request "
                f"(best of {args.rounds} rounds of {args.requests})"
            )


if __name__ == "__main__":
    main()
