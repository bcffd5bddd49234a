"""What the precedence rule's start-up path costs on a database of N model versions.

    bash ../shared/realdb/documentdb.sh start 27330
    .venv/bin/python -m bench.start_up --uri mongodb://127.0.0.1:27330 --versions 3000 30000

Every start runs ``MongoModelVersionStore._ensure_precedence_unique``: it groups every version
by (name, SemVer precedence) to find equal-precedence twins stored before the rule, which reads
the whole collection whichever plan serves it (docs/real-server.md, the query-shape table).
Each size is inserted into a throw-away database (versions of 1,000 names, no twins), then the
path is timed 5 times; the median is reported. The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from graphql_api.domain.semver import version_sort_key
from graphql_api.storage.mongo import MongoStorage

RUNS = 5
BATCH = 5000


async def measure(uri: str, versions: int) -> list[float]:
    client: Any = AsyncMongoClient(uri, tz_aware=True)
    name = f"mltrain_bench_start_up_{uuid.uuid4().hex[:8]}"
    try:
        storage = MongoStorage(client[name])
        await storage.ensure_indexes()
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        docs: list[dict[str, Any]] = [
            {
                "_id": f"v{n}",
                "model_name": f"m{n % 1000}",
                "version": f"1.{n}.0",
                "version_sort_key": version_sort_key(f"1.{n}.0"),
                "model_type": "regression",
                "status": "archived",
                "metrics": {},
                "created_date": t0 + timedelta(seconds=n),
                "deployed_date": None,
                "precedence_twin": "",
                "rev": 0,
            }
            for n in range(versions)
        ]
        for start in range(0, versions, BATCH):
            await client[name]["model_versions"].insert_many(docs[start : start + BATCH])
        runs = []
        for _ in range(RUNS):
            began = time.perf_counter()
            await storage.model_versions._ensure_precedence_unique()
            runs.append(time.perf_counter() - began)
        return runs
    finally:
        await client.drop_database(name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--versions", type=int, nargs="+", default=[3000, 30000])
    args = parser.parse_args()
    for versions in args.versions:
        runs = asyncio.run(measure(args.uri, versions))
        print(
            f"{versions:>8} versions: median {statistics.median(runs) * 1000:.0f} ms "
            f"({', '.join(f'{r * 1000:.0f}' for r in runs)} ms)"
        )


if __name__ == "__main__":
    main()
