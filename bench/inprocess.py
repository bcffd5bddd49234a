"""Server CPU per request without the network: the ASGI app called directly, in one process.

    .venv/bin/python -m bench.inprocess                      # dashboard, trainingJob, floor
    .venv/bin/python -m bench.inprocess dashboard --profile  # cProfile: the top costs
    .venv/bin/python -m bench.inprocess dashboard deep --uri mongodb://127.0.0.1:27028  # 100k
    .venv/bin/python -m bench.inprocess --compare DIR        # paired rounds: this tree vs DIR's
    .venv/bin/python -m bench.inprocess job --uri mongodb://127.0.0.1:27306   # a seeded server
    .venv/bin/python -m bench.inprocess floor --peers-dir /path/to/bench-peers  # the floor app

The harness (``bench.run``) measures what a client sees through uvicorn; this measures what one
request costs the process, with far less noise, so changes of a few percent show. Each round
sends ``--requests`` requests of one operation through the whole app (Starlette, the API-key
middleware, Strawberry, storage, the mock or ``--uri``'s server) and takes the process CPU time;
the best round counts, since noise on a shared VM only ever adds. ``--compare`` keeps this tree
and another copy of the project (for example ``git worktree add /tmp/before HEAD~1``) alive in
two worker processes and alternates short rounds between them (see ``_compare``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported late at run time: under --compare this file drives another tree
    from graphql_api.storage.base import StoreStats

PROJECT = Path(__file__).resolve().parent.parent


def _default_peers_dir() -> Path:
    """bench/peers.py's lookup, repeated here: under --compare this file drives another tree,
    which may predate bench/peers.py."""
    if configured := os.environ.get("BENCH_PEERS_DIR"):
        return Path(configured)
    for folder in PROJECT.parents:
        if (folder / "shared" / "bench-peers").is_dir():
            return folder / "shared" / "bench-peers"
    return PROJECT.parent / "shared" / "bench-peers"


PEERS_DIR = _default_peers_dir()
OPERATIONS = ("dashboard", "deep", "job", "floor")

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
    """The least CPU per request over ``rounds`` rounds of ``requests``, in ms."""
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


@contextlib.asynccontextmanager
async def _senders(
    jobs: int,
    operations: list[str],
    uri: str | None = None,
    peers_dir: Path = PEERS_DIR,
    database: str = "mltrain_bench",
) -> AsyncIterator[tuple[dict[str, Sender], StoreStats]]:
    """One sender per operation, each checked once and warmed up; ``floor`` is the peers'
    cached-Strawberry floor app (50 in-memory jobs) called the same way."""
    from bench.deep_page import walk_half_way
    from bench.queries import BODIES, check_dashboard, check_job, dashboard_after
    from bench.seed import seed
    from graphql_api.app import create_app
    from graphql_api.settings import Settings
    from graphql_api.storage.mongo import MongoStorage

    bodies = {"dashboard": BODIES["mltrain_dashboard.json"], "job": BODIES["mltrain_job.json"]}
    checks: dict[str, Callable[[dict[str, Any]], None]] = {
        "dashboard": check_dashboard,
        "job": check_job,
        "floor": _check_floor,
    }
    storage = MongoStorage.connect(uri, database)
    app = create_app(Settings(), storage=storage)
    async with app.router.lifespan_context(app):
        if uri is None:  # the mock lives in this process; a server was seeded by bench.seed
            await seed(storage, jobs, 0)
        if "deep" in operations:  # the dashboard half way down its list (bench.deep_page)
            cursor, _, _ = await walk_half_way(storage)
            bodies["deep"] = dashboard_after(cursor)
            checks["deep"] = check_dashboard
        senders = {op: await _app_sender(app, bodies[op]) for op in operations if op in bodies}
        if "floor" in operations:
            sys.path.insert(0, str(peers_dir))
            import bodies as peer_bodies  # type: ignore[import-not-found]
            import floor_apps  # type: ignore[import-not-found]

            senders["floor"] = await _app_sender(floor_apps.gql_cached_app, peer_bodies.FLOOR_QUERY)
        for op, send_one in senders.items():
            checks[op](json.loads(await send_one()))
            for _ in range(20):  # warm the parser/validation caches and the interpreter
                await send_one()
        yield senders, storage.stats
    await storage.close()


def _check_floor(answer: dict[str, Any]) -> None:
    assert len(answer["data"]["jobs"]) == 50, f"unexpected answer: {answer!r:.300}"


async def _measure(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Per operation: ms of CPU per request, and database round trips per request."""
    results = {}
    async with _senders(args.jobs, args.operations, args.uri, args.peers_dir, args.database) as (
        senders,
        stats,
    ):
        for op, send_one in senders.items():
            before = stats.round_trips
            ms = await _rounds(send_one, args.requests, args.rounds, args.profile)
            trips = (stats.round_trips - before) / (args.requests * args.rounds)
            results[op] = (ms, trips)
    return results


async def _worker(args: argparse.Namespace) -> None:
    """For --compare: answer "<operation> <requests>" lines on stdin with ms per request."""
    import graphql_api

    async with _senders(args.jobs, args.operations, args.uri, args.peers_dir, args.database) as (
        senders,
        _,
    ):
        print("ready", Path(graphql_api.__file__).parent.parent, flush=True)
        for line in sys.stdin:
            op, requests = line.split()
            print(await _rounds(senders[op], int(requests), 1, False), flush=True)


def _compare(other: Path, args: argparse.Namespace) -> None:
    """Both trees in worker processes, alive side by side; short rounds alternate between
    them (in alternating order), so a burst of noise from the host lands on both. Reported:
    the median of the paired per-round changes, and its spread."""
    trees = [PROJECT, other.resolve()]
    workers = []
    for tree in trees:
        worker = subprocess.Popen(
            [
                # This file drives both trees; what it measures is the tree's code.
                sys.executable,
                "-c",
                f"import runpy; runpy.run_path({__file__!r}, run_name='__main__')",
                "--worker",
                "--jobs",
                str(args.jobs),
                *(["--uri", args.uri] if args.uri else []),
                "--database",
                args.database,
                "--peers-dir",
                str(args.peers_dir),
                *args.operations,
            ],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdin and worker.stdout
        ready, code = worker.stdout.readline().split()
        # The worker must run the tree's code, not the editable install's.
        assert ready == "ready" and Path(code) == tree, (ready, code, tree)
        workers.append(worker)

    def round_of(worker: subprocess.Popen[str], op: str) -> float:
        assert worker.stdin and worker.stdout
        worker.stdin.write(f"{op} {args.requests}\n")
        worker.stdin.flush()
        return float(worker.stdout.readline())

    try:
        for op in args.operations:
            this: list[float] = []
            that: list[float] = []
            for i in range(args.alternations):
                if i % 2:
                    that.append(round_of(workers[1], op))
                    this.append(round_of(workers[0], op))
                else:
                    this.append(round_of(workers[0], op))
                    that.append(round_of(workers[1], op))
            changes = sorted((a / b - 1) * 100 for a, b in zip(this, that, strict=True))
            quartiles = statistics.quantiles(changes, n=4)
            print(
                f"{op:10s} this tree {statistics.median(this):7.3f} ms/req   "
                f"{other}: {statistics.median(that):7.3f} ms/req   "
                f"change {statistics.median(changes):+.1f}% (median of {args.alternations} "
                f"paired rounds of {args.requests}; middle half {quartiles[0]:+.1f}% "
                f"to {quartiles[2]:+.1f}%)",
                flush=True,
            )
    finally:
        for worker in workers:
            assert worker.stdin
            worker.stdin.close()
            worker.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "operations",
        nargs="*",
        help=(
            "dashboard, deep (its page half way down), job and/or floor (the peers' "
            "cached-Strawberry floor); default all"
        ),
    )
    parser.add_argument("--jobs", type=int, default=100, help="jobs seeded in the mock")
    parser.add_argument("--uri", help="a server seeded with python -m bench.seed, not the mock")
    parser.add_argument("--database", default="mltrain_bench", help="--uri's seeded database")
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print cProfile top costs")
    parser.add_argument("--compare", type=Path, help="another project tree to interleave with")
    parser.add_argument("--alternations", type=int, default=40, help="paired rounds (--compare)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=PEERS_DIR,
        help=f"the peers' folder, for the floor app (default {PEERS_DIR})",
    )
    args = parser.parse_args()
    args.operations = args.operations or list(OPERATIONS)
    if unknown := set(args.operations) - set(OPERATIONS):
        parser.error(f"unknown operations {sorted(unknown)}: choose from {', '.join(OPERATIONS)}")
    if args.compare:
        _compare(args.compare, args)
        return
    logging.disable(logging.WARNING)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        run = asyncio.run
    else:
        run = uvloop.run
    if args.worker:
        run(_worker(args))
        return
    for op, (ms, trips) in run(_measure(args)).items():
        print(
            f"{op:10s} {ms:7.3f} ms of CPU per request "
            f"(best of {args.rounds} rounds of {args.requests}), "
            f"{trips:.2f} database round trips per request"
        )


if __name__ == "__main__":
    main()
