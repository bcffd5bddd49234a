"""The claim guard that makes conditional updates atomic on servers that are not (FerretDB)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from graphql_api.domain.enums import ModelType, TrainingStatus
from graphql_api.domain.errors import ConflictError, InvalidTransitionError
from graphql_api.services.container import Services
from graphql_api.storage.mongo import STALE_CLAIM_AFTER, MongoStorage
from tests.conftest import REAL_URI


@pytest.fixture(params=["mock", *(["real"] if REAL_URI else [])])
async def guarded(request: pytest.FixtureRequest) -> AsyncIterator[MongoStorage]:
    name = f"mltrain_guard_{uuid.uuid4().hex[:10]}"
    storage = MongoStorage.connect(
        REAL_URI if request.param == "real" else None, name, guarded_updates=True
    )
    await storage.ensure_indexes()
    yield storage
    if request.param == "real":
        await storage.database.client.drop_database(name)
    await storage.close()


async def new_job(services: Services) -> str:
    version = await services.registry.register(
        model_name="m", version="1.0.0", model_type=ModelType.REGRESSION
    )
    job = await services.training.create(model_id=version.model_id, dataset_id="d")
    return job.job_id


async def test_claims_are_released_after_each_update(guarded: MongoStorage) -> None:
    services = Services.over(guarded)
    job_id = await new_job(services)
    await services.training.start(job_id)
    await services.training.report_metrics(job_id, {"loss": 0.5})
    assert await guarded.database["update_claims"].count_documents({}) == 0
    doc = await guarded.database["training_jobs"].find_one({"_id": job_id})
    assert doc is not None and doc["rev"] == 2


async def test_a_fresh_claim_of_another_writer_is_waited_for_not_overridden(
    guarded: MongoStorage,
) -> None:
    services = Services.over(guarded)
    job_id = await new_job(services)
    # Another writer holds revision 0 right now and keeps it for the whole test: the update
    # cannot proceed and, after its bounded retries, reports a conflict, changing nothing.
    await guarded.database["update_claims"].insert_one(
        {"_id": f"training_jobs:{job_id}:0", "at": datetime.now(UTC)}
    )
    with pytest.raises(ConflictError, match="too many writers"):
        await services.training.start(job_id)
    job = await services.training.get(job_id)
    assert job is not None and job.status is TrainingStatus.PENDING


async def test_a_claim_left_by_a_crashed_writer_is_cleared(guarded: MongoStorage) -> None:
    services = Services.over(guarded)
    job_id = await new_job(services)
    crashed_at = datetime.now(UTC) - STALE_CLAIM_AFTER - timedelta(seconds=1)
    await guarded.database["update_claims"].insert_one(
        {"_id": f"training_jobs:{job_id}:0", "at": crashed_at}
    )
    started = await services.training.start(job_id)
    assert started.status is TrainingStatus.RUNNING
    with pytest.raises(InvalidTransitionError):
        await services.training.start(job_id)
