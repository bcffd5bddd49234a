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
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench.idle_cost import cpu_seconds, database_pids
from graphql_api.domain.enums import TrainingStatus
from graphql_api.domain.queries import PageRequest, TrainingJobFilter, TrainingJobOrder
from graphql_api.storage.mongo import MongoStorage

PAGE = 50
NEWEST = TrainingJobOrder.CREATED_DATE_DESC
#: Calls of one mode in a row (``measure``).
BLOCK = 10
#: One model version's jobs (bench.seed spreads jobs over 100 versions: 1% each).
MODEL = "bench-model-03-v2"


async def measure(
    repeat: int, pids_file: Path | None, calls: Sequence[Callable[[], Awaitable[Any]]]
) -> list[tuple[float, float | None]]:
    """Per call: the median wall ms and the database's CPU ms per page (None without
    ``pids_file``), ``repeat`` times each, in blocks of ``BLOCK`` calls taking turns (paired
    rounds: a change of the machine's load hits every call alike; blocks, because the
    database's work for a call can end after its answer and would be counted to the next
    call). Each must answer the same page (the modes differ in cost, never in rows)."""
    pages = [await call() for call in calls]  # warm-up: caches, and the windows' hints
    assert all(page.items == pages[0].items for page in pages), "modes answered differently"
    pids = database_pids(pids_file)
    times: list[list[float]] = [[] for _ in calls]
    cpu = [0.0 for _ in calls]
    for _ in range(max(1, repeat // BLOCK)):
        for i, call in enumerate(calls):
            cpu_before = cpu_seconds(pids)
            for _ in range(min(BLOCK, repeat)):
                start = time.perf_counter()
                await call()
                times[i].append((time.perf_counter() - start) * 1000)
            cpu[i] += cpu_seconds(pids) - cpu_before
    return [
        (statistics.median(t), c * 1000 / len(t) if pids else None)
        for t, c in zip(times, cpu, strict=True)
    ]


async def deep_cursor(storage: MongoStorage, where: TrainingJobFilter, pages: int) -> str:
    """The end cursor of page ``pages``, by paging as a client does."""
    cursor = None
    for _ in range(pages):
        page = await storage.training_jobs.find(where, NEWEST, PageRequest(PAGE, cursor))
        cursor = page.end_cursor
    assert cursor is not None
    return cursor


async def main(
    uri: str,
    databases: list[str],
    unordered: list[str],
    repeat: int,
    pids_file: Path | None,
    plain: bool,
) -> None:
    labels = (["plain"] if plain else []) + (["windowed, unordered"] if unordered else [])
    labels.append("windowed")
    print(
        f"| jobs | page ({PAGE} jobs, newest first) | "
        + " | ".join(f"{label} ms | {label} db CPU ms" for label in labels)
        + " |"
    )
    print("| ---: | --- |" + " ---: | ---: |" * len(labels))
    failed = TrainingJobFilter(statuses=(TrainingStatus.FAILED,))
    cancelled = TrainingJobFilter(statuses=(TrainingStatus.CANCELLED,))
    model = TrainingJobFilter(model_ids=(MODEL,))
    model_failed = TrainingJobFilter(model_ids=(MODEL,), statuses=(TrainingStatus.FAILED,))
    for n, database in enumerate(databases):
        modes: list[MongoStorage] = []
        if plain:
            modes.append(MongoStorage.connect(uri, database, timeout=300, windowed_sorts=False))
            await modes[-1].ensure_indexes()
        if unordered:
            # Same data, indexes as an earlier release made them: not ensured (that would
            # rebuild them ordered), the server only identified (windows on), and read as
            # that release did (no index named).
            before = MongoStorage.connect(uri, unordered[n], timeout=300, windowed_sorts=True)
            await before.identify_server()
            before.training_jobs.ordered_indexes = False
            modes.append(before)
        windowed = MongoStorage.connect(uri, database, timeout=300, windowed_sorts=True)
        await windowed.ensure_indexes()
        modes.append(windowed)
        jobs = await windowed.database["training_jobs"].estimated_document_count()
        # Cursors as a client gets them (walked with windows: the plain walk is the slow one).
        cases: dict[str, tuple[TrainingJobFilter, str | None]] = {
            "first page": (TrainingJobFilter(), None),
            "page 100 (after a cursor)": (
                TrainingJobFilter(),
                await deep_cursor(windowed, TrainingJobFilter(), 99),
            ),
            "status FAILED (12%): first page": (failed, None),
            "status FAILED: page 20": (failed, await deep_cursor(windowed, failed, 19)),
            "status CANCELLED (8%): first page": (cancelled, None),
            "one model (1%): first page": (model, None),
            "one model: page 2": (model, await deep_cursor(windowed, model, 1)),
            "one model, FAILED (0.12%): first page": (model_failed, None),
        }
        for label, (where, after) in cases.items():
            request = PageRequest(PAGE, after)
            calls = [
                partial(storage.training_jobs.find, where, NEWEST, request) for storage in modes
            ]
            row = [f"{jobs:,}", label]
            for wall, cpu in await measure(repeat, pids_file, calls):
                row += [f"{wall:.1f}", "-" if cpu is None else f"{cpu:.1f}"]
            print("| " + " | ".join(row) + " |", flush=True)
        for storage in modes:
            await storage.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("databases", nargs="+", help="databases seeded by bench.seed")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--pids", type=Path, help="scripts/documentdb.sh's pids file (db CPU)")
    parser.add_argument(
        "--unordered",
        nargs="+",
        default=[],
        help="one database per database above, with the same data and the indexes of a release "
        "before ordered compound indexes (left as they are): measured side by side",
    )
    parser.add_argument("--plain", action="store_true", help="also measure plain sorted pages")
    arguments = parser.parse_args()
    if arguments.unordered and len(arguments.unordered) != len(arguments.databases):
        raise SystemExit("--unordered: one database per database")
    if "127.0.0.1" not in arguments.uri and "localhost" not in arguments.uri:
        raise SystemExit("bench.sorted_pages runs against a local server only")
    asyncio.run(
        main(
            arguments.uri,
            arguments.databases,
            arguments.unordered,
            arguments.repeat,
            arguments.pids,
            arguments.plain,
        )
    )
