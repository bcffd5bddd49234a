"""Profile the server under load with py-spy and name the top costs.

    .venv/bin/python -m bench.profile --body mltrain_dashboard.json            # mock, 10k jobs
    .venv/bin/python -m bench.profile --uri mongodb://127.0.0.1:27306 ...      # seeded server
    .venv/bin/python -m bench.profile --peers-dir /path/to/bench-peers ...     # wrk_report.lua

Starts the bench server pinned to one core (as bench/targets.py does), drives it with wrk on
the other core, records on-CPU samples of the server with ``py-spy record --format raw`` and
prints the functions with the most inclusive and self samples, plus a breakdown by layer.
The raw stacks stay in /tmp/peers/results/profile-*.txt (open them with speedscope).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.peers import default_peers_dir
from bench.process import start_server, stop_server
from bench.queries import write_bodies

PROJECT = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("PEERS_ROOT", "/tmp/peers"))
PEERS_DIR = default_peers_dir()
VENV = PROJECT / ".venv" / "bin"
PORT = 8290

# First matching marker in a stack (outermost first is not what we want: innermost wins).
LAYERS = [
    ("mongomock (in-memory db)", ("mongomock",)),
    ("motor/pymongo/bson (driver)", ("motor", "pymongo", "bson")),
    ("storage: documents -> models", ("graphql_api/storage",)),
    ("response JSON encoding", ("encode_json", "orjson", "json/encoder")),
    ("graphql-core parse/validate", ("graphql/language", "graphql/validation")),
    ("graphql-core execute", ("graphql/execution",)),
    ("strawberry", ("strawberry",)),
    ("project resolvers/loaders", ("graphql_api", "resolvers/")),
    ("uvicorn/starlette/http", ("uvicorn", "starlette", "httptools")),
    ("asyncio/uvloop", ("asyncio", "uvloop")),
]


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in LAYERS:
            if any(m in frame for m in markers):
                return name
    return "other"


def summarize(raw: Path, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
        layers[layer_of(frames)] += n
    print(f"\n{total} samples. By layer (innermost frame's package):")
    for name, n in layers.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\nTop {top} by self samples:")
    for frame, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print(f"\nTop {top} by inclusive samples (frames under 95%):")
    shown = 0
    for frame, n in inclusive.most_common():
        if n < 0.95 * total and shown < top:
            print(f"  {100 * n / total:5.1f}%  {frame}")
            shown += 1


def main() -> None:
    parser = argparse.ArgumentParser(description="py-spy profile of the server under wrk")
    parser.add_argument("--body", default="mltrain_dashboard.json")
    parser.add_argument("--uri", default="", help="a seeded database; default: mock")
    parser.add_argument("--jobs", default="10000", help="jobs seeded into the mock")
    parser.add_argument("--variant", default="", help="MLTRAIN_BENCH_VARIANT (bench/variants.py)")
    parser.add_argument("-c", "--connections", default="4")
    parser.add_argument("-d", "--duration", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=PEERS_DIR,
        help=f"the peers' folder, for wrk_report.lua (default {PEERS_DIR})",
    )
    args = parser.parse_args()

    bodies = ROOT / "bodies"
    write_bodies(str(bodies))
    results = ROOT / "results"
    results.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        MLTRAIN_GRAPHIQL="false",
        MLTRAIN_LOG_LEVEL="warning",
        MLTRAIN_MONGODB_URI=args.uri,
        MLTRAIN_MONGODB_DATABASE="mltrain_bench",
        MLTRAIN_BENCH_SEED_JOBS="0" if args.uri else args.jobs,
        MLTRAIN_BENCH_VARIANT=args.variant,
    )
    server = start_server(env, PORT, "1")
    try:
        body = (bodies / args.body).read_bytes()
        request = urllib.request.Request(  # check the body's answer once before sampling
            f"http://127.0.0.1:{PORT}/graphql",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=30).read()
        raw = results / f"profile-{Path(args.body).stem}-{time.strftime('%H%M%S')}.txt"
        spy = subprocess.Popen(
            [
                str(VENV / "py-spy"),
                "record",
                "-p",
                str(server.pid),
                "-d",
                str(args.duration),
                "-r",
                "250",
                "--gil",
                "--format",
                "raw",
                "-o",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
        )
        wrk_env = dict(
            os.environ,
            WRK_METHOD="POST",
            WRK_BODY_FILE=str(bodies / args.body),
            WRK_LABEL="profile",
        )
        out = subprocess.run(
            [
                "taskset",
                "-c",
                "0",
                "wrk",
                "-t1",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--timeout",
                "10s",
                "-s",
                str(args.peers_dir / "wrk_report.lua"),
                f"http://127.0.0.1:{PORT}/graphql",
            ],
            env=wrk_env,
            capture_output=True,
            text=True,
            check=True,
        )
        print(next(line for line in out.stdout.splitlines() if line.startswith("WRKJSON")))
        spy.wait(timeout=args.duration + 60)
        summarize(raw, args.top)
        print(f"\nraw stacks: {raw}")
    finally:
        stop_server(server)


if __name__ == "__main__":
    sys.exit(main())
