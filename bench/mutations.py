"""The mutation benchmark: lifecycle mutations per second on one core.

    .venv/bin/python -m bench.mutations                 # mock and DocumentDB, c=1 and c=16
    .venv/bin/python -m bench.mutations --no-real -d 5  # mock only
    .venv/bin/python -m bench.mutations --server ferretdb           # FerretDB v1
    .venv/bin/python -m bench.mutations --no-mock --uri mongodb://127.0.0.1:27306 --slice 1000
        # a server seeded already: python -m bench.seed --uri ... --pending <slice x points>
    .venv/bin/python -m bench.mutations --jobs 0 --slice 300 -d 5   # small collections
    .venv/bin/python -m bench.mutations --no-mock --uri ... --slice 1000 --offset 2000 -c 16 \
        --app-dir /tmp/before      # the next unused PENDING slice, served by another tree's code

Seeds 10,000 jobs (``--jobs``) plus PENDING jobs, starts the server pinned to one core (like
the query bench) and drives the PENDING jobs with wrk on the other core: startTrainingJob, then
reportTrainingMetrics, then completeTrainingJob (bench/mutations.lua). Each is one atomic
conditional update plus one change event. A response counts as ok only when it is the job
(not a typed error); the table shows ok/s and the server's CPU per request.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bench.process import start_server, stop_server
from bench.run import (
    LOAD_CPU,
    PEERS_ROOT,
    PROJECT,
    SERVERS,
    add_server_options,
    start_real,
    stop_real,
)

SERVER_CPU = os.environ.get("SERVER_CPU", "1")
PORT = 8250
MOCK_SLICE, SLICE = 1_000, 10_000  # PENDING jobs per measured point: 3 mutations each


def group_cpu(pgid: int) -> float:
    """user+sys CPU seconds of the live processes of a process group."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += sum(int(x) for x in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def run_wrk(offset: int, jobs: int, conc: int, duration: int) -> dict[str, Any]:
    env = dict(os.environ, MUT_PREFIX="bench-pending-", MUT_OFFSET=str(offset), MUT_JOBS=str(jobs))
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            "wrk",
            "-t1",
            f"-c{conc}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(PROJECT / "bench" / "mutations.lua"),
            f"http://127.0.0.1:{PORT}/graphql",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    result: dict[str, Any] = json.loads(out.split("WRKJSON ", 1)[1].splitlines()[0])
    result["sample"] = out.split("SAMPLE ", 1)[1].strip() if "SAMPLE " in out else ""
    return result


def measure(
    label: str,
    env: dict[str, str],
    concs: list[int],
    duration: int,
    jobs: int,
    offset: int = 0,
    app_dir: Path = PROJECT,
) -> list[str]:
    rows = []
    server = start_server(
        dict(os.environ, MLTRAIN_GRAPHIQL="false", **env), PORT, SERVER_CPU, app_dir=app_dir
    )
    try:
        for conc in concs:
            # Each concurrency drives its own slice of the PENDING jobs.
            cpu0 = group_cpu(server.pid)
            r = run_wrk(offset, jobs, conc, duration)
            cpu = group_cpu(server.pid) - cpu0
            offset += jobs
            seconds = r["duration_us"] / 1e6
            ok, bad = r["ok"], r["bad"]
            rows.append(
                f"{label:<32} c={conc:<3} {ok / seconds:8.1f} ok/s  "
                f"p50 {r['p50_us'] / 1000:7.2f} ms  p99 {r['p99_us'] / 1000:7.2f} ms  "
                f"ok {ok:>6} failed {bad:>5}  "
                f"CPU {1000 * cpu / max(ok + bad, 1):6.2f} ms/req"
            )
            if bad:
                rows.append(f"    first failure: {r['sample']}")
            print(rows[-1], flush=True)
    finally:
        stop_server(server)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="lifecycle mutations per second")
    add_server_options(parser)
    parser.add_argument("--no-mock", action="store_true")
    parser.add_argument("-d", "--duration", type=int, default=15)
    parser.add_argument("-c", "--conc", default="1,16")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs besides the PENDING ones")
    parser.add_argument("--slice", type=int, help="PENDING jobs per point (default 1k mock, 10k)")
    parser.add_argument(
        "--offset",
        type=int,
        default=0,
        help="first PENDING job to drive at --uri (later runs: past the used ones)",
    )
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=PROJECT,
        help="the project tree whose code the server runs (default this one)",
    )
    args = parser.parse_args()
    mock_slice, slice_ = args.slice or MOCK_SLICE, args.slice or SLICE
    size = f"{args.jobs // 1000}k jobs" if args.jobs >= 1000 else f"{args.jobs} jobs"
    concs = [int(c) for c in args.conc.split(",")]
    os.environ.setdefault("PEERS_ROOT", PEERS_ROOT)
    rows = []
    if not args.no_mock:
        rows += measure(
            f"mutations (mock, {size})",
            {
                "MLTRAIN_MONGODB_URI": "",
                "MLTRAIN_BENCH_SEED_JOBS": str(args.jobs),
                "MLTRAIN_BENCH_SEED_PENDING": str(mock_slice * len(concs)),
            },
            concs,
            args.duration,
            mock_slice,
        )
    if not args.no_real:
        started = not args.uri
        label = "server at --uri" if args.uri else f"{SERVERS[args.server]}, {size}"
        try:
            uri = args.uri or start_real(args.server, pending=slice_ * len(concs), jobs=args.jobs)
            rows += measure(
                f"mutations ({label})",
                {"MLTRAIN_MONGODB_URI": uri, "MLTRAIN_MONGODB_DATABASE": "mltrain_bench"},
                concs,
                args.duration,
                slice_,
                args.offset,
                args.app_dir,
            )
        finally:
            if started:
                stop_real(args.server)
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
