# The project's servers as extra targets of the peers' harness:
#   python3 bench-peers/run.py --extra-targets bench/targets.py --only floor,mltrain
# run.py exec()s this file with ROOT, HERE, BODIES and check_floor in scope (stdlib python3).
# bench/run.py sets the environment below; see bench/README.md.
#   MLTRAIN_ROOT                the project checkout (default: the current directory)
#   MLTRAIN_BENCH_FERRETDB_URI  add the real-server targets, over this seeded database
#   MLTRAIN_BENCH_REAL_LABEL    what that server is, for the table (default FerretDB)
#   MLTRAIN_BENCH_TARGETS       comma-separated target names to keep (default: all; on
#                               FerretDB v1 all but mltrain-ferretdb-dashboard, which needs
#                               -c 1: see README)
#   MLTRAIN_BENCH_BEFORE_DIR    a copy of graphql_api/, resolvers/ and bench/ from before an
#                               optimisation: adds "-before" servers running that code
import os
import subprocess
import sys

PROJECT = os.environ.get("MLTRAIN_ROOT", os.getcwd())
sys.path.insert(0, PROJECT)
from bench.process import FAST, uvicorn_command  # noqa: E402
from bench.queries import (  # noqa: E402
    check_dashboard,
    check_dashboard_count,
    check_job,
    write_bodies,
)

write_bodies(BODIES)  # noqa: F821  (run.py's scope)
_DASH = ("dashboard", "mltrain_dashboard.json", check_dashboard)
_COUNT = ("dashboard+totalCount", "mltrain_dashboard_count.json", check_dashboard_count)
_JOB = ("trainingJob(jobId)", "mltrain_job.json", check_job)
_DEEP = (
    "dashboard, half way down (after a cursor)",
    "mltrain_dashboard_deep.json",
    check_dashboard,
)


def _server(
    name: str,
    port: int,
    label: str,
    env: dict,
    endpoints: list,
    app_dir: str = PROJECT,
    flags: list = FAST,
) -> dict:
    cmd = uvicorn_command(app_dir, port, flags)
    return {
        "name": name,
        "group": "mltrain",
        "cmd": cmd,
        "port": port,
        "startup_timeout": 180,
        "env": {"MLTRAIN_GRAPHIQL": "false", "MLTRAIN_LOG_LEVEL": "warning", **env},
        "endpoints": [
            {
                "name": f"mltrain {what} ({label})",
                "method": "POST",
                "path": "/graphql",
                "body": body,
                "check": check,
            }
            for what, body, check in endpoints
        ],
    }


def _mock(jobs: int) -> dict:
    return {"MLTRAIN_MONGODB_URI": "", "MLTRAIN_BENCH_SEED_JOBS": str(jobs)}


_servers = [
    _server("mltrain-mock-100", 8200, "mock, 100 jobs", _mock(100), [_DASH, _JOB]),
    _server("mltrain-mock-1k", 8201, "mock, 1k jobs", _mock(1000), [_DASH]),
    _server("mltrain-mock", 8202, "mock, 10k jobs", _mock(10_000), [_DASH, _COUNT, _JOB]),
    _server(
        "mltrain-mock-100-h11",
        8205,
        "mock, 100 jobs, asyncio+h11",
        _mock(100),
        [_DASH, _JOB],
        flags=["--loop", "asyncio", "--http", "h11"],
    ),
]
_uri = os.environ.get("MLTRAIN_BENCH_FERRETDB_URI")
_label = os.environ.get("MLTRAIN_BENCH_REAL_LABEL", "FerretDB")  # which real server (bench.run)
if _uri:
    _real = {"MLTRAIN_MONGODB_URI": _uri, "MLTRAIN_MONGODB_DATABASE": "mltrain_bench"}
    _servers.append(_server("mltrain-ferretdb", 8203, f"{_label}, seeded", _real, [_JOB]))
    # The deep page's body holds a cursor into this database: walked before the servers start.
    subprocess.run(
        [
            os.path.join(PROJECT, ".venv", "bin", "python"),
            "-m",
            "bench.deep_page",
            "--uri",
            _uri,
            "--database",
            _real["MLTRAIN_MONGODB_DATABASE"],
            "--out",
            os.path.join(BODIES, _DEEP[1]),  # noqa: F821  (run.py's scope)
        ],
        cwd=PROJECT,
        check=True,
    )
    _servers.append(
        _server("mltrain-ferretdb-dashboard", 8204, f"{_label}, seeded", _real, [_DASH, _DEEP])
    )
_before = os.environ.get("MLTRAIN_BENCH_BEFORE_DIR")
if _before:
    _servers.append(
        _server(
            "mltrain-mock-100-before",
            8206,
            "mock, 100 jobs, BEFORE",
            _mock(100),
            [_DASH, _JOB],
            app_dir=_before,
        )
    )
    if _uri:
        _servers.append(
            _server(
                "mltrain-ferretdb-before", 8207, f"{_label}, BEFORE", _real, [_JOB], app_dir=_before
            )
        )
        _servers.append(
            _server(
                "mltrain-ferretdb-dashboard-before",
                8208,
                f"{_label}, BEFORE",
                _real,
                [_DASH],
                app_dir=_before,
            )
        )
_keep = set(filter(None, os.environ.get("MLTRAIN_BENCH_TARGETS", "").split(",")))
# FerretDB v1 sorts every document itself (~2 s a page): its dashboard runs apart, with -c 1.
_slow_sorts = _label in ("FerretDB", "FerretDB v1")
EXTRA_SERVERS = [
    s
    for s in _servers
    if s["name"] in _keep
    or (not _keep and not (_slow_sorts and s["name"].startswith("mltrain-ferretdb-dashboard")))
]
