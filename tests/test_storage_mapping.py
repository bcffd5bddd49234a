"""The document mapping is derived from the models: a field added to a model is stored and read
back without an edit in storage, and reads restore what BSON loses from the annotations."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import bson
import pytest
from pydantic import Field

from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.values import UtcDatetime
from graphql_api.storage.mongo.documents import (
    MODEL_VERSIONS,
    STORAGE_FIELDS,
    TRAINING_JOBS,
    RecordMapping,
)

NOW = datetime(2026, 11, 30, 12, 30, 15, 123000, tzinfo=UTC)


def through_bson(doc: dict[str, Any]) -> dict[str, Any]:
    """What a document is once stored and read back: BSON drops the zone of datetimes and
    keeps enums as their plain values."""
    decoded: dict[str, Any] = bson.decode(bson.encode(doc))
    return decoded


class Priority(StrEnum):
    LOW = "low"
    HIGH = "high"


class TaggedJob(TrainingJob):
    """A TrainingJob with fields storage has never heard of."""

    tags: list[str] = Field(default_factory=list)
    priority: Priority = Priority.LOW
    escalated: Priority | None = None
    deadline: UtcDatetime | None = None


def test_a_field_added_to_a_model_round_trips_without_touching_storage() -> None:
    mapping = RecordMapping(TaggedJob, key="job_id")
    job = TaggedJob(
        job_id="j-1",
        model_id="m-1",
        dataset_id="d",
        status=TrainingStatus.RUNNING,
        started_date=NOW,
        tags=["nightly", "gpu"],
        priority=Priority.HIGH,
        escalated=Priority.LOW,
        deadline=NOW,
    )
    doc = mapping.to_doc(job)
    assert doc["tags"] == ["nightly", "gpu"] and doc["priority"] == "high"
    back = mapping.from_doc(through_bson(doc))
    assert back == job
    assert back.priority is Priority.HIGH and back.escalated is Priority.LOW
    assert back.deadline is not None and back.deadline.tzinfo is UTC


def test_a_field_missing_from_an_older_document_takes_the_models_default() -> None:
    mapping = RecordMapping(TaggedJob, key="job_id")
    old = through_bson(
        TRAINING_JOBS.to_doc(TrainingJob(job_id="j-2", model_id="m-1", dataset_id="d"))
    )
    back = mapping.from_doc(old)
    assert (back.tags, back.priority, back.escalated, back.deadline) == (
        [],
        Priority.LOW,
        None,
        None,
    )
    assert back.job_id == "j-2" and back.status is TrainingStatus.PENDING


@pytest.mark.parametrize(
    "record",
    [
        TrainingJob(
            job_id="j-3",
            model_id="m-1",
            dataset_id="d",
            status=TrainingStatus.FAILED,
            hyperparameters={"lr": 0.1, "layers": [1, 2], "opt": {"name": "adam"}},
            started_date=NOW,
            completed_date=NOW,
            metrics={"loss": 0.5, "epoch": 3},
            logs_url="s3://logs/j-3",
            created_date=NOW,
            failure_reason="OOM",
        ),
        ModelVersion(
            model_id="m-2",
            model_name="churn",
            version="1.2.0-rc.1+build.5",
            model_type=ModelType.REGRESSION,
            status=ModelStatus.PRODUCTION,
            metrics={"f1": 0.9},
            created_date=NOW,
            deployed_date=NOW,
        ),
    ],
)
def test_every_field_of_the_stored_models_round_trips(record: TrainingJob | ModelVersion) -> None:
    mapping: RecordMapping[Any] = (
        TRAINING_JOBS if isinstance(record, TrainingJob) else MODEL_VERSIONS
    )
    doc = mapping.to_doc(record)
    assert set(doc) - set(type(record).model_fields) <= set(STORAGE_FIELDS)
    assert mapping.from_doc(through_bson(doc)) == record


def test_storage_names_never_shadow_a_model_field() -> None:
    for model in (ModelVersion, TrainingJob):
        assert not set(model.model_fields) & set(STORAGE_FIELDS), model


def test_a_version_document_keeps_its_storage_fields() -> None:
    version = ModelVersion(
        model_id="m-3",
        model_name="churn",
        version="1.10.0",
        model_type="prediction",
        created_date=NOW,
    )
    doc = MODEL_VERSIONS.to_doc(version)
    assert doc["_id"] == "m-3" and "model_id" not in doc
    assert (doc["rev"], doc["precedence_twin"], doc["status"]) == (0, "", "development")
    assert isinstance(doc["version_sort_key"], str) and doc["version_sort_key"]
