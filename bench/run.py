"""One command for the query benchmark: the project next to the floors and peers, same run.

    .venv/bin/python -m bench.run                       # floors + mltrain (mock and FerretDB)
    .venv/bin/python -m bench.run --peers               # + Dagster and MLflow (set up first)
    .venv/bin/python -m bench.run --no-ferretdb -d 5    # mock only, 5 s per point

Starts FerretDB (scripts/ferretdb.sh, pinned to the load core), seeds it through
``bench.seed``, then runs the peers' harness (``run.py --extra-targets bench/targets.py``),
which pins each server to one core and ``wrk`` to the other, and prints the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", PROJECT.parent / "shared" / "bench-peers"))
PEERS_ROOT = os.environ.get("PEERS_ROOT", "/tmp/peers")
LOAD_CPU = os.environ.get("LOAD_CPU", "0")
FERRETDB_PORT = "27018"


def start_ferretdb(pending: int = 0, jobs: int = 10_000) -> str:
    """A fresh FerretDB pinned to the load core, seeded with ``jobs`` jobs; returns its URI."""
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, str(PROJECT / "scripts" / "ferretdb.sh"), "restart",
         FERRETDB_PORT], check=True, capture_output=True, text=True,
    ).stdout
    uri = next(line.split("=", 1)[1] for line in out.splitlines()
               if line.startswith("MONGODB_URI="))
    subprocess.run([sys.executable, "-m", "bench.seed", "--uri", uri, "--jobs", str(jobs),
                    "--pending", str(pending)],
                   check=True, cwd=PROJECT)
    return uri


def stop_ferretdb() -> None:
    subprocess.run([str(PROJECT / "scripts" / "ferretdb.sh"), "stop", FERRETDB_PORT], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description="mltrain vs floors and peers")
    parser.add_argument("--peers", action="store_true", help="also Dagster and MLflow")
    parser.add_argument("--no-ferretdb", action="store_true", help="mock backend only")
    parser.add_argument("--targets", default="", help="mltrain targets to keep (comma list)")
    parser.add_argument("--before", default="",
                        help="a copy of graphql_api/, resolvers/, bench/ from before a change")
    parser.add_argument("--only", default="", help="override run.py --only")
    parser.add_argument("-d", "--duration", default="15")
    parser.add_argument("--rounds", default="1")
    args = parser.parse_args()

    only = args.only or ("floor,mltrain" + (",dagster,mlflow-w1" if args.peers else ""))
    env = dict(os.environ, PEERS_ROOT=PEERS_ROOT, MLTRAIN_ROOT=str(PROJECT),
               MLTRAIN_BENCH_TARGETS=args.targets, MLTRAIN_BENCH_BEFORE_DIR=args.before)
    try:
        if not args.no_ferretdb:
            env["MLTRAIN_BENCH_FERRETDB_URI"] = start_ferretdb()
        harness = ["python3", str(PEERS_DIR / "run.py"), "--extra-targets",
                   str(PROJECT / "bench" / "targets.py"), "-d", args.duration,
                   "--rounds", args.rounds]
        subprocess.run([*harness, "--only", only], check=True, env=env, cwd=PROJECT)
        if not args.no_ferretdb and not args.targets:
            # FerretDB v1 sorts all 10,000 documents itself (~2 s a page): one connection.
            print("\n# the dashboard over FerretDB, one connection", flush=True)
            subprocess.run([*harness, "--only", "mltrain", "-c", "1"], check=True, cwd=PROJECT,
                           env=dict(env, MLTRAIN_BENCH_TARGETS="mltrain-ferretdb-dashboard"))
    finally:
        if not args.no_ferretdb:
            stop_ferretdb()


if __name__ == "__main__":
    main()
