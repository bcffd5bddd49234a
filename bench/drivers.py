"""Motor next to PyMongo's own async client, over the same server (the storage moved to the latter).

    scripts/ferretdb.sh restart 27219 && .venv/bin/python -m bench.seed --uri mongodb://127.0.0.1:27219
    .venv/bin/python -m bench.drivers --uri mongodb://127.0.0.1:27219

Motor runs PyMongo in a thread pool and hands every operation across threads; PyMongo's
``AsyncMongoClient`` does its I/O on the event loop. Both drive the same ``MongoStorage`` (the
storage package is the only code that touches the driver, so the handle is all that differs),
in one process, in alternating rounds of ``storage.training_jobs.get(job_id)``: the read behind
``trainingJob(jobId)``. Reported: the process's CPU per operation (all threads) and wall time.
Motor is no dependency of the project any more; mongomock-motor (the in-memory database) still
installs it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from bench.queries import job_id
from graphql_api.storage.mongo import MongoStorage


async def _rounds(uri: str, database: str, rounds: int, ops: int) -> None:
    from motor.motor_asyncio import AsyncIOMotorClient
    from pymongo import AsyncMongoClient

    clients: dict[str, Any] = {
        "motor": AsyncIOMotorClient(uri, tz_aware=True),
        "pymongo async": AsyncMongoClient(uri, tz_aware=True),
    }
    stores = {name: MongoStorage(client[database]) for name, client in clients.items()}
    key = job_id(42)
    for store in stores.values():
        assert await store.training_jobs.get(key) is not None, f"seed {uri} first (bench.seed)"
    cpu: dict[str, list[float]] = {name: [] for name in stores}
    wall: dict[str, list[float]] = {name: [] for name in stores}
    for i in range(rounds):
        for name in sorted(stores, reverse=bool(i % 2)):  # alternate which goes first
            store = stores[name]
            started_cpu, started = time.process_time(), time.perf_counter()
            for _ in range(ops):
                await store.training_jobs.get(key)
            cpu[name].append((time.process_time() - started_cpu) * 1000 / ops)
            wall[name].append((time.perf_counter() - started) * 1000 / ops)
    for name in stores:
        print(
            f"{name:14s} training_jobs.get: CPU {statistics.median(cpu[name]):.3f} ms/op, "
            f"wall {statistics.median(wall[name]):.3f} ms/op "
            f"(medians of {rounds} rounds of {ops})"
        )
    clients["motor"].close()
    await clients["pymongo async"].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True, help="a seeded server (python -m bench.seed)")
    parser.add_argument("--database", default="mltrain_bench")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--ops", type=int, default=200)
    args = parser.parse_args()
    import uvloop

    uvloop.run(_rounds(args.uri, args.database, args.rounds, args.ops))


if __name__ == "__main__":
    main()
