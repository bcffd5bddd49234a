"""Load ``bench.search``'s rows fast and keep them: bare collections in batches of 25,000 (the
most DocumentDB takes in one insert), then the read indexes the search queries use, built over
the loaded rows one at a time (timed). Measure with ``bench.search --database NAME --keep
--as-loaded``.

    python -m bench.search_load --uri mongodb://127.0.0.1:27103 --database sorts_search

Why not ``bench.search --rows 100000``: it inserts into collections with every index in place,
1,000 rows at a time, which ran about 15 s per 1,000 rows on the shared 2-core VM (25 min per
100,000 of each); and the unique indexes' builds (DocumentDB exclusion constraints) over
100,000 rows ran past 10 minutes. The (model name, version) index is therefore built plain
here, with the same keys and name: the same index for reads (nameContains scans its entries).
Bounded: 127.0.0.1 only; drops and rewrites only the named database.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

from bench.search import job_doc, version_doc

BATCH = 25_000
READ_INDEXES = {
    "model_versions": [
        ([("model_name", ASCENDING), ("version", ASCENDING)], "model_name_version_unique"),
        ([("model_name", ASCENDING), ("version_sort_key", DESCENDING)], "model_name_semver"),
        ([("created_date", DESCENDING), ("_id", DESCENDING)], "created_date"),
        ([("status", ASCENDING), ("created_date", DESCENDING)], "status_created_date"),
        ([("version_sort_key", DESCENDING), ("_id", DESCENDING)], "semver"),
        ([("tags.key", ASCENDING), ("tags.value", ASCENDING)], "tags"),
    ],
    "training_jobs": [
        ([("created_date", DESCENDING), ("_id", DESCENDING)], "created_date"),
        ([("status", ASCENDING), ("created_date", DESCENDING)], "status_created_date"),
        ([("model_id", ASCENDING), ("created_date", DESCENDING)], "model_id_created_date"),
    ],
}


async def main(uri: str, database: str, rows: int) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri, timeoutMS=900_000)
    db = client[database]
    await client.drop_database(database)
    start = time.perf_counter()
    for lo in range(0, rows, BATCH):
        hi = min(rows, lo + BATCH)
        await db["model_versions"].insert_many([version_doc(n) for n in range(lo, hi)])
        await db["training_jobs"].insert_many([job_doc(n) for n in range(lo, hi)])
        print(f"{hi:,} versions and jobs: {time.perf_counter() - start:.0f} s", flush=True)
    for collection, indexes in READ_INDEXES.items():
        for keys, name in indexes:
            began = time.perf_counter()
            await db[collection].create_index(keys, name=name)
            print(f"{collection}.{name}: {time.perf_counter() - began:.0f} s", flush=True)
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    arguments = parser.parse_args()
    if "127.0.0.1" not in arguments.uri and "localhost" not in arguments.uri:
        raise SystemExit("bench.search_load runs against a local server only")
    asyncio.run(main(arguments.uri, arguments.database, arguments.rows))
