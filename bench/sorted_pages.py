"""Sorted list pages on the real server, plain sorts against windows of the sort key (issue 12
item 4): a first page, page 100 through a real ``after`` cursor, and a filtered page, over
databases seeded by ``bench.seed`` (e.g. 10,000 and 100,000 jobs), both ways in the same run.

    bash scripts/documentdb.sh start 27103
    python -m bench.seed --uri mongodb://127.0.0.1:27103 --database sorts_10k --jobs 10000
    python -m bench.seed --uri mongodb://127.0.0.1:27103 --database sorts_100k --jobs 100000
    python -m bench.sorted_pages --uri mongodb://127.0.0.1:27103 sorts_10k sorts_100k \\
        --pids ~/.cache/mltrain-realdb/run/27103.pids

Each page is read through the storage (``training_jobs.find``, 50 jobs, newest first), ``--repeat``
times per mode; printed: the median wall time and, with ``--pids`` (the file
``scripts/documentdb.sh start`` writes), the database's CPU per page (FerretDB + PostgreSQL
processes, user + system, over all repeats: wall time on a shared machine is noisy, CPU much
less). The windowed storage learns its hints on one warm-up page per case (as a running server
does on its first pages). Bounded: 127.0.0.1 only, fixed repeats, reads only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.idle_cost import cpu_seconds, database_pids
from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.queries import PageRequest, TrainingJobFilter, TrainingJobOrder
from graphql_api.storage.mongo import MongoStorage

PAGE = 50
NEWEST = TrainingJobOrder.CREATED_DATE_DESC


async def measure(
    repeat: int, pids_file: Path | None, call: Callable[[], Awaitable[Any]]
) -> tuple[float, float | None]:
    """Median wall ms, and the database's CPU ms per call (None without ``pids_file``)."""
    assert len((await call()).items) == PAGE  # warm-up: caches, and the windows' hints
    pids = database_pids(pids_file)
    cpu_before = cpu_seconds(pids)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    cpu = (cpu_seconds(pids) - cpu_before) * 1000 / repeat if pids else None
    return statistics.median(times), cpu


async def deep_cursor(storage: MongoStorage, where: TrainingJobFilter, pages: int) -> str:
    """The end cursor of page ``pages``, by paging as a client does."""
    cursor = None
    for _ in range(pages):
        page = await storage.training_jobs.find(where, NEWEST, PageRequest(PAGE, cursor))
        cursor = page.end_cursor
    assert cursor is not None
    return cursor


async def main(uri: str, databases: list[str], repeat: int, pids_file: Path | None) -> None:
    print(
        f"| jobs | page ({PAGE} jobs, newest first) | plain ms | plain db CPU ms "
        "| windowed ms | windowed db CPU ms |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    failed = TrainingJobFilter(statuses=(TrainingStatus.FAILED,))
    for database in databases:
        modes = {
            windowed: MongoStorage.connect(uri, database, timeout=300, windowed_sorts=windowed)
            for windowed in (False, True)
        }
        for storage in modes.values():
            await storage.ensure_indexes()
        jobs = await modes[True].database["training_jobs"].estimated_document_count()
        # Cursors as a client gets them (walked with windows: the plain walk is the slow one).
        cursor_100 = await deep_cursor(modes[True], TrainingJobFilter(), 99)
        cursor_failed_20 = await deep_cursor(modes[True], failed, 19)
        cases: dict[str, tuple[TrainingJobFilter, str | None]] = {
            "first page": (TrainingJobFilter(), None),
            "page 100 (after a cursor)": (TrainingJobFilter(), cursor_100),
            "status FAILED (12%): first page": (failed, None),
            "status FAILED: page 20": (failed, cursor_failed_20),
        }
        for label, (where, after) in cases.items():
            row = [f"{jobs:,}", label]
            for storage in modes.values():
                request = PageRequest(PAGE, after)

                page = partial(storage.training_jobs.find, where, NEWEST, request)
                wall, cpu = await measure(repeat, pids_file, page)
                row += [f"{wall:.1f}", "-" if cpu is None else f"{cpu:.1f}"]
            print("| " + " | ".join(row) + " |", flush=True)
        for storage in modes.values():
            await storage.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("databases", nargs="+", help="databases seeded by bench.seed")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--pids", type=Path, help="scripts/documentdb.sh's pids file (db CPU)")
    arguments = parser.parse_args()
    if "127.0.0.1" not in arguments.uri and "localhost" not in arguments.uri:
        raise SystemExit("bench.sorted_pages runs against a local server only")
    asyncio.run(main(arguments.uri, arguments.databases, arguments.repeat, arguments.pids))
