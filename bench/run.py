"""One command for the query benchmark: the project next to the floors and peers, same run.

    .venv/bin/python -m bench.run                       # floors + mltrain (mock and DocumentDB)
    .venv/bin/python -m bench.run --peers               # + Dagster and MLflow (set up first)
    .venv/bin/python -m bench.run --no-real -d 5        # mock only, 5 s per point
    .venv/bin/python -m bench.run --server ferretdb     # the real server is FerretDB v1
    .venv/bin/python -m bench.run --uri mongodb://127.0.0.1:27306   # a server seeded already

Starts the real server (``--server``: FerretDB v2 + DocumentDB, scripts/documentdb.sh, or
FerretDB v1, scripts/ferretdb.sh; pinned to the load core) and seeds it through ``bench.seed``,
unless ``--uri`` names one seeded already; then runs the peers' harness (``run.py
--extra-targets bench/targets.py`` in ``--peers-dir``, default ../shared/bench-peers beside the
checkout), which pins each server to one core and ``wrk`` to the other, and prints the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from bench.peers import default_peers_dir

PROJECT = Path(__file__).resolve().parent.parent
PEERS_DIR = default_peers_dir()
PEERS_ROOT = os.environ.get("PEERS_ROOT", "/tmp/peers")
LOAD_CPU = os.environ.get("LOAD_CPU", "0")
FERRETDB_PORT = "27018"
DOCUMENTDB_PORT = "27028"
#: The real servers a bench can start: the CI backend (docs/real-server.md) and FerretDB v1.
SERVERS = {"documentdb": "FerretDB v2 + DocumentDB", "ferretdb": "FerretDB v1"}


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The options every bench that uses a real server shares."""
    parser.add_argument(
        "--server",
        choices=sorted(SERVERS),
        default="documentdb",
        help="the real server to start (default documentdb)",
    )
    parser.add_argument(
        "--uri",
        default="",
        help="use this server, seeded already (python -m bench.seed), instead of starting one",
    )
    parser.add_argument(
        "--no-real", "--no-ferretdb", dest="no_real", action="store_true", help="mock backend only"
    )


def add_peers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=PEERS_DIR,
        help=f"the peers' harness folder (default {PEERS_DIR})",
    )


def start_real(server: str, pending: int = 0, jobs: int = 10_000) -> str:
    """A fresh real server pinned to the load core, seeded with ``jobs`` jobs; its URI."""
    if server == "ferretdb":
        out = subprocess.run(
            [
                "taskset",
                "-c",
                LOAD_CPU,
                str(PROJECT / "scripts" / "ferretdb.sh"),
                "restart",
                FERRETDB_PORT,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        uri = next(
            line.split("=", 1)[1] for line in out.splitlines() if line.startswith("MONGODB_URI=")
        )
    else:
        script = str(PROJECT / "scripts" / "documentdb.sh")
        subprocess.run([script, "build"], check=True)
        subprocess.run([script, "stop", DOCUMENTDB_PORT], check=True)
        subprocess.run(["taskset", "-c", LOAD_CPU, script, "start", DOCUMENTDB_PORT], check=True)
        uri = f"mongodb://127.0.0.1:{DOCUMENTDB_PORT}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.seed",
            "--uri",
            uri,
            "--jobs",
            str(jobs),
            "--pending",
            str(pending),
        ],
        check=True,
        cwd=PROJECT,
    )
    return uri


def stop_real(server: str) -> None:
    if server == "ferretdb":
        subprocess.run(
            [str(PROJECT / "scripts" / "ferretdb.sh"), "stop", FERRETDB_PORT], check=False
        )
    else:
        subprocess.run(
            [str(PROJECT / "scripts" / "documentdb.sh"), "stop", DOCUMENTDB_PORT], check=False
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="mltrain vs floors and peers")
    parser.add_argument("--peers", action="store_true", help="also Dagster and MLflow")
    add_server_options(parser)
    add_peers_option(parser)
    parser.add_argument("--targets", default="", help="mltrain targets to keep (comma list)")
    parser.add_argument(
        "--before",
        default="",
        help="a copy of graphql_api/, resolvers/, bench/ from before a change",
    )
    parser.add_argument("--only", default="", help="override run.py --only")
    parser.add_argument("-d", "--duration", default="15")
    parser.add_argument("--rounds", default="1")
    args = parser.parse_args()

    only = args.only or ("floor,mltrain" + (",dagster,mlflow-w1" if args.peers else ""))
    env = dict(
        os.environ,
        PEERS_ROOT=PEERS_ROOT,
        MLTRAIN_ROOT=str(PROJECT),
        MLTRAIN_BENCH_TARGETS=args.targets,
        MLTRAIN_BENCH_BEFORE_DIR=args.before,
        MLTRAIN_BENCH_REAL_LABEL="server at --uri" if args.uri else SERVERS[args.server],
    )
    started = not args.no_real and not args.uri
    try:
        if not args.no_real:
            env["MLTRAIN_BENCH_FERRETDB_URI"] = args.uri or start_real(args.server)
        harness = [
            "python3",
            str(args.peers_dir / "run.py"),
            "--extra-targets",
            str(PROJECT / "bench" / "targets.py"),
            "-d",
            args.duration,
            "--rounds",
            args.rounds,
        ]
        subprocess.run([*harness, "--only", only], check=True, env=env, cwd=PROJECT)
        if started and args.server == "ferretdb" and not args.targets:
            # FerretDB v1 sorts all 10,000 documents itself (~2 s a page): one connection.
            print("\n# the dashboard over FerretDB, one connection", flush=True)
            subprocess.run(
                [*harness, "--only", "mltrain", "-c", "1"],
                check=True,
                cwd=PROJECT,
                env=dict(env, MLTRAIN_BENCH_TARGETS="mltrain-ferretdb-dashboard"),
            )
    finally:
        if started:
            stop_real(args.server)


if __name__ == "__main__":
    main()
