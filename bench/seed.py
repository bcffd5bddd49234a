"""Seed a benchmark data set through the project's services and storage mapping.

100 model versions (20 model names x 5 versions) are registered and promoted through
``ModelRegistryService``, so they carry their change events like any real version. Training
jobs are built as ``TrainingJob`` records with the same validation ``createTrainingJob`` runs
(``validation.build``), in their final lifecycle state (a status mix with matching dates,
metrics and failure reasons), mapped with ``storage.mongo.documents`` and inserted in bulk: driving
10,000 jobs one mutation at a time would take minutes on the in-memory mock.

    python -m bench.seed --uri mongodb://127.0.0.1:27018 --jobs 10000
    python -m bench.seed --uri ... --pending 20000   # PENDING jobs for bench/mutations.py
"""

from __future__ import annotations

import argparse
import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.queries import job_id, pending_job_id
from graphql_api.domain import validation
from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.models import TrainingJob
from graphql_api.domain.queries import ModelVersionFilter
from graphql_api.services.container import Services
from graphql_api.storage.mongo import MongoStorage, documents

MODEL_NAMES = 20
VERSIONS_PER_MODEL = 5
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATUS_MIX = [
    (TrainingStatus.COMPLETED, 60),
    (TrainingStatus.FAILED, 12),
    (TrainingStatus.RUNNING, 10),
    (TrainingStatus.PENDING, 10),
    (TrainingStatus.CANCELLED, 8),
]
BATCH = 1000


def model_id(i: int) -> str:
    return f"bench-model-{i // VERSIONS_PER_MODEL:02d}-v{i % VERSIONS_PER_MODEL + 1}"


async def seed_versions(services: Services) -> list[str]:
    """100 versions; the newest of each name is promoted to production, one more to testing."""
    ids = []
    for i in range(MODEL_NAMES * VERSIONS_PER_MODEL):
        name, minor = f"bench-model-{i // VERSIONS_PER_MODEL:02d}", i % VERSIONS_PER_MODEL
        record = await services.registry.register(
            model_name=name,
            version=f"1.{minor}.0",
            model_type=ModelType.CLASSIFICATION,
            metrics={"accuracy": 0.8 + minor / 100, "f1": 0.75 + minor / 100},
            model_id=model_id(i),
            actor="bench",
        )
        if minor >= VERSIONS_PER_MODEL - 2:
            await services.registry.promote(record.model_id, ModelStatus.TESTING, actor="bench")
        if minor == VERSIONS_PER_MODEL - 1:
            await services.registry.promote(record.model_id, ModelStatus.PRODUCTION, actor="bench")
        ids.append(record.model_id)
    return ids


def build_job(
    i: int, rng: random.Random, versions: list[str], status: TrainingStatus, ident: str
) -> TrainingJob:
    created = T0 + timedelta(minutes=3 * i, milliseconds=rng.randrange(60_000))
    started = created + timedelta(seconds=rng.randrange(5, 600))
    ended = started + timedelta(minutes=rng.randrange(5, 240))
    fields: dict[str, Any] = {
        "job_id": ident,
        "model_id": versions[i % len(versions)],
        "dataset_id": f"dataset-{i % 37:02d}-2026",
        "status": status,
        "created_date": created,
        "hyperparameters": {
            "learning_rate": round(rng.uniform(1e-5, 1e-2), 6),
            "batch_size": rng.choice([16, 32, 64, 128]),
            "epochs": rng.randint(1, 100),
            "optimizer": {"name": rng.choice(["adam", "sgd", "adamw"]), "weight_decay": 0.01},
            "dropout": round(rng.uniform(0, 0.5), 3),
        },
        "logs_url": f"s3://ml-logs/bench/{ident}.log",
    }
    if status is not TrainingStatus.PENDING:
        if status is not TrainingStatus.CANCELLED or rng.random() < 0.5:
            fields["started_date"] = started
        fields["metrics"] = {
            "loss": round(rng.uniform(0, 2), 5),
            "accuracy": round(rng.uniform(0.5, 1), 5),
            "f1": round(rng.uniform(0.5, 1), 5),
            "val_loss": round(rng.uniform(0, 2), 5),
            "epoch": float(rng.randint(1, 100)),
        }
    if status in (TrainingStatus.COMPLETED, TrainingStatus.FAILED, TrainingStatus.CANCELLED):
        fields["completed_date"] = ended
    if status is TrainingStatus.FAILED:
        fields["failure_reason"] = "loss diverged (NaN) at epoch 2"
    return validation.build(TrainingJob, **fields)


async def insert_jobs(storage: MongoStorage, jobs: list[TrainingJob]) -> None:
    # The storage contract inserts one record at a time; bulk-insert the same documents.
    collection = storage._db["training_jobs"]
    for start in range(0, len(jobs), BATCH):
        chunk = jobs[start : start + BATCH]
        await collection.insert_many([documents.TRAINING_JOBS.to_doc(j) for j in chunk])


async def seed(storage: MongoStorage, jobs: int, pending: int = 0, rng_seed: int = 42) -> str:
    """Seed an empty database; one that already has model versions is left alone."""
    services = Services.over(storage)
    if await services.registry.count(ModelVersionFilter()) > 0:
        return "database not empty, nothing seeded"
    versions = await seed_versions(services)
    rng = random.Random(rng_seed)
    statuses, weights = zip(*STATUS_MIX, strict=True)
    records = [
        build_job(i, rng, versions, rng.choices(statuses, weights)[0], job_id(i))
        for i in range(jobs)
    ]
    records += [
        build_job(jobs + i, rng, versions, TrainingStatus.PENDING, pending_job_id(i))
        for i in range(pending)
    ]
    await insert_jobs(storage, records)
    return f"{len(versions)} model versions, {jobs} jobs, {pending} pending jobs for mutations"


async def _main(uri: str | None, database: str, jobs: int, pending: int) -> None:
    # Not the serving bound (2.5 s): a loaded DocumentDB can take longer over a batch.
    storage = MongoStorage.connect(uri, database, timeout=60)
    try:
        await storage.ensure_indexes()
        print(await seed(storage, jobs, pending))
    finally:
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True, help="MongoDB URI (the mock keeps nothing)")
    parser.add_argument("--database", default="mltrain_bench")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--pending", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(_main(args.uri, args.database, args.jobs, args.pending))


if __name__ == "__main__":
    main()
