"""Every field type survives API -> MongoDB -> API unchanged (through the storage backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.values import to_storage_precision
from graphql_api.services.container import Services
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import CREATE_JOB, JOB, MODEL, REGISTER


async def test_datetimes_come_back_as_utc_with_milliseconds(
    services: Services, storage: MongoStorage
) -> None:
    version = await services.registry.register(
        model_name="m", version="1.0.0", model_type=ModelType.REGRESSION
    )
    stored = await storage.model_versions.get(version.model_id)
    assert stored is not None
    assert stored.created_date == version.created_date
    assert stored.created_date.tzinfo is UTC
    assert stored.created_date.microsecond % 1000 == 0


async def test_enums_metrics_and_nested_hyperparameters_round_trip(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    metrics = {"accuracy": 0.9731, "mse": 1e-12, "loss": 12345.678, "zero": 0.0, "neg": -3.5}
    created = (
        await gql.data(
            REGISTER,
            input={
                "modelName": "m",
                "version": "2.0.0-rc.1+build.5",
                "modelType": "PREDICTION",
                "metrics": metrics,
            },
        )
    )["registerModelVersion"]
    assert (await gql.data(MODEL, id=created["modelId"]))["modelVersion"]["metrics"] == metrics
    stored = await storage.model_versions.get(created["modelId"])
    assert stored is not None
    assert stored.model_type is ModelType.PREDICTION and stored.status is ModelStatus.DEVELOPMENT
    assert stored.version == "2.0.0-rc.1+build.5"

    params = {
        "lr": 3e-4,
        "epochs": 12,
        "big": 2**53 + 1,
        "flag": True,
        "none": None,
        "name": "été ✓",
        "schedule": {"kind": "cosine", "warmup": {"steps": 500, "ratio": 0.1}},
        "layers": [512, 256, {"dropout": 0.1}],
        "empty": {},
        "list": [],
    }
    job = (
        await gql.data(
            CREATE_JOB,
            input={
                "modelId": created["modelId"],
                "datasetId": "d",
                "hyperparameters": params,
            },
        )
    )["createTrainingJob"]
    fetched = (await gql.data(JOB, id=job["jobId"]))["trainingJob"]
    assert fetched["hyperparameters"] == params
    assert fetched["status"] == "PENDING"
    stored_job = await storage.training_jobs.get(job["jobId"])
    assert stored_job is not None and stored_job.status is TrainingStatus.PENDING
    assert stored_job.hyperparameters == params


async def test_api_datetimes_parse_as_aware_utc(gql: GraphQLClient) -> None:
    # Stored to the millisecond: the moment the request was sent, so truncated.
    sent_at = to_storage_precision(datetime.now(UTC))
    created = (
        await gql.data(
            REGISTER,
            input={
                "modelName": "m",
                "version": "1.0.0",
                "modelType": "REGRESSION",
            },
        )
    )["registerModelVersion"]
    moment = datetime.fromisoformat(created["createdDate"])
    assert moment.utcoffset() == timedelta(0)
    # Set while the request was served (bracketed, not compared with a time limit).
    assert sent_at <= moment <= datetime.now(UTC)
