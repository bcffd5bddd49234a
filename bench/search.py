"""The cost of search (issue 14 item 8) at 100,000 rows: each new filter and the metric
ordering, a first page of 20 and its totalCount, through the storage (the API adds the same
per-page cost as any list).

    bash scripts/documentdb.sh start 27409
    .venv/bin/python -m bench.search --uri mongodb://127.0.0.1:27409 [--rows 100000]

Loads ``rows`` model versions and ``rows`` jobs into a fresh database (dropped after), in
batches of 5,000: every 10th version carries ``team`` tags, each has ``val_acc`` but every 7th
(missing), names ``model-<n % 1000>``; jobs carry ``optimizer.lr`` from 5 values and ``loss``.
Each query runs ``--repeat`` times; the median and the slowest are printed, in milliseconds.
Bounded: 127.0.0.1 only, fixed row and repeat counts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from graphql_api.domain.artifacts import Tag
from graphql_api.domain.enums import ModelType
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.queries import (
    HyperparameterCondition,
    MetricCondition,
    MetricOrder,
    ModelVersionFilter,
    ModelVersionOrder,
    PageRequest,
    TagCondition,
    TrainingJobFilter,
    TrainingJobOrder,
)
from graphql_api.storage.mongo import MongoStorage, documents

BATCH = 1_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def version_doc(n: int) -> dict[str, Any]:
    metrics: dict[str, float] = {} if n % 7 == 0 else {"val_acc": (n % 1000) / 1000}
    tags = [Tag(key="team", value=f"team-{n % 5}")] if n % 10 == 0 else []
    return documents.MODEL_VERSIONS.to_doc(
        ModelVersion(
            model_id=f"v{n:06d}",
            model_name=f"model-{n % 1000}",
            version=f"1.{n}.0",
            model_type=ModelType.REGRESSION,
            metrics=metrics,
            tags=tags,
            created_date=T0 + timedelta(seconds=n),
        )
    )


def job_doc(n: int) -> dict[str, Any]:
    return documents.TRAINING_JOBS.to_doc(
        TrainingJob(
            job_id=f"j{n:06d}",
            model_id=f"v{n:06d}",
            dataset_id="d",
            hyperparameters={"optimizer": {"lr": [0.1, 0.01, 0.001, 0.0001, 1e-5][n % 5]}},
            metrics={} if n % 7 == 0 else {"loss": (n % 997) / 997},
            created_date=T0 + timedelta(seconds=n),
        )
    )


async def timed(repeat: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


async def main(uri: str, rows: int, repeat: int, database: str | None) -> None:
    # A long timeout for the load; each query's time is printed against the API's default
    # bound (MLTRAIN_MONGODB_TIMEOUT, 2.5 s), which a query past it would hit.
    name = database or f"bench_search_{uuid.uuid4().hex[:8]}"
    storage = MongoStorage.connect(uri, name, timeout=300)
    try:
        await storage.ensure_indexes()
        start = time.perf_counter()
        if database:  # measure what an earlier (interrupted) load left
            rows = await storage.database["model_versions"].count_documents({})
        for lo in range(0, rows if database is None else 0, BATCH):
            hi = min(rows, lo + BATCH)
            await storage.database["model_versions"].insert_many(
                [version_doc(n) for n in range(lo, hi)]
            )
            await storage.database["training_jobs"].insert_many([job_doc(n) for n in range(lo, hi)])
        print(f"loaded {rows:,} versions and {rows:,} jobs in {time.perf_counter() - start:.0f} s")
        versions, jobs = storage.model_versions, storage.training_jobs
        first = PageRequest(first=20)
        newest = ModelVersionOrder.CREATED_DATE_DESC
        cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        version_filters = {
            "no filter (reference)": ModelVersionFilter(),
            "tags team=team-1 (2% match)": ModelVersionFilter(
                tags=(TagCondition("team", ("team-1",)),)
            ),
            "nameContains 'el-99' (1.1% match)": ModelVersionFilter(name_contains="el-99"),
            "metrics val_acc > 0.99 (0.9% match)": ModelVersionFilter(
                metrics=(MetricCondition("val_acc", gt=0.99),)
            ),
        }
        for label, where in version_filters.items():
            cases.append(
                (f"modelVersions {label}: page", partial(versions.find, where, newest, first))
            )
            cases.append((f"modelVersions {label}: totalCount", partial(versions.count, where)))
        cases.append(
            (
                "modelVersions orderByMetric val_acc DESC: first page",
                lambda: versions.find(ModelVersionFilter(), MetricOrder("val_acc"), first),
            )
        )
        job_filters = {
            "hyperparameters optimizer.lr = 0.001 (20% match)": TrainingJobFilter(
                hyperparameters=(HyperparameterCondition(("optimizer", "lr"), 0.001),)
            ),
            "metrics loss < 0.01 (0.9% match)": TrainingJobFilter(
                metrics=(MetricCondition("loss", lt=0.01),)
            ),
        }
        for label, job_where in job_filters.items():
            cases.append(
                (
                    f"trainingJobs {label}: page",
                    partial(jobs.find, job_where, TrainingJobOrder.CREATED_DATE_DESC, first),
                )
            )
            cases.append((f"trainingJobs {label}: totalCount", partial(jobs.count, job_where)))
        cases.append(
            (
                "trainingJobs orderByMetric loss ASC: first page",
                lambda: jobs.find(TrainingJobFilter(), MetricOrder("loss", False), first),
            )
        )
        print(f"| query ({rows:,} rows) | median ms | slowest ms |")
        print("| --- | ---: | ---: |")
        for label, call in cases:
            median, slowest = await timed(repeat, call)
            print(f"| {label} | {median:.0f} | {slowest:.0f} |")
    finally:
        await storage.database.client.drop_database(storage.database.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--database", help="measure an existing bench_search_* database (no load; dropped after)"
    )
    arguments = parser.parse_args()
    if "127.0.0.1" not in arguments.uri and "localhost" not in arguments.uri:
        raise SystemExit("bench.search runs against a local server only")
    asyncio.run(main(arguments.uri, arguments.rows, arguments.repeat, arguments.database))
