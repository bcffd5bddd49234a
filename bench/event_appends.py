"""How many change-log appends per second the database takes: the ceiling on change rate that
all instances together share (every change of every instance appends one event).

    .venv/bin/python -m bench.event_appends --uri mongodb://127.0.0.1:27350 --count 2000 -c 16

Appends ``--count`` events through the storage layer (``MongoEventStore.append``: a ``$inc`` of
the one counter document, then an insert) from ``-c`` concurrent tasks into a scratch database,
and prints appends/s. Loopback only; bounded by ``--count``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pymongo

from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.storage.mongo import MongoStorage


async def run(uri: str, count: int, concurrency: int) -> None:
    database = f"mltrain_bench_appends_{uuid.uuid4().hex[:8]}"
    storage = MongoStorage.connect(uri, database)
    await storage.ensure_indexes()
    remaining = iter(range(count))

    async def writer() -> None:
        for n in remaining:
            await storage.events.append(
                ChangeEvent(
                    seq=0,
                    entity=EntityKind.TRAINING_JOB,
                    entity_id=f"job-{n % 50}",
                    kind=ChangeKind.METRICS_REPORTED,
                    previous_status="RUNNING",
                    status="RUNNING",
                    occurred_at=datetime.now(UTC),
                    model_id="model",
                    snapshot={"metrics": {"step": n}},
                    event_id=uuid.uuid4().hex,
                )
            )

    try:
        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        print(f"{count} appends, c={concurrency}: {count / elapsed:.0f} appends/s")
    finally:
        admin: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as admin:
            admin.drop_database(database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.uri, args.count, args.concurrency))


if __name__ == "__main__":
    main()
