"""Reading records from their documents: what a page of jobs costs to rebuild, and what a
record read back still is (the storage builds it without pydantic's model_construct)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from graphql_api.domain.enums import JobHealth, ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo.documents import MODEL_VERSIONS, TRAINING_JOBS
from tests.api_helpers import create_job_id, register_id
from tests.conftest import GraphQLClient

PAGE = """{ trainingJobs(first: 20) { edges { node {
  jobId status createdDate modelVersion { modelId status } } } } }"""

_CONSTRUCT = BaseModel.model_construct.__func__.__code__  # type: ignore[attr-defined]


@contextmanager
def counting_model_construct() -> Iterator[list[int]]:
    """Count the calls of pydantic's ``model_construct`` (any model) while inside."""
    calls = [0]

    def profile(frame: FrameType, event: str, _: Any) -> None:
        if event == "call" and frame.f_code is _CONSTRUCT:
            calls[0] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(previous)


async def test_a_page_of_jobs_is_read_without_model_construct(gql: GraphQLClient) -> None:
    """Twenty jobs and their model version come back as stored, and rebuilding them calls
    pydantic's per-field ``model_construct`` for none of them (it was one call per record,
    and half of a record's mapping cost)."""
    model_id = await register_id(gql)
    jobs = {await create_job_id(gql, model_id) for _ in range(20)}
    with counting_model_construct() as calls:
        page = await gql.data(PAGE)
    nodes = [edge["node"] for edge in page["trainingJobs"]["edges"]]
    assert {node["jobId"] for node in nodes} == jobs
    assert all(node["status"] == "PENDING" for node in nodes)
    assert all(
        node["modelVersion"] == {"modelId": model_id, "status": "DEVELOPMENT"} for node in nodes
    )
    assert all(
        datetime.fromisoformat(node["createdDate"]).utcoffset() is not None for node in nodes
    )
    assert calls[0] == 0


async def test_a_record_read_back_is_a_whole_pydantic_record(storage: MongoStorage) -> None:
    """What callers do with a record read from storage works as on a validated one: equality,
    dumps, copies with changes, the fields it was given, and assignment still validated."""
    job = TrainingJob(
        job_id="job-mapped",
        model_id="churn-1-0-0",
        dataset_id="ds",
        status=TrainingStatus.RUNNING,
        started_date=datetime(2026, 12, 1, 12, 30, tzinfo=UTC),
    )
    await storage.training_jobs.insert(job)
    read = await storage.training_jobs.get("job-mapped")
    assert read is not None
    assert read == job
    assert read.model_dump() == job.model_dump()
    assert read.model_fields_set == set(TrainingJob.model_fields)
    assert read.status is TrainingStatus.RUNNING and read.health is JobHealth.HEALTHY
    assert read.started_date is not None and read.started_date.tzinfo is UTC
    assert read.started_date == job.started_date
    assert read.model_copy(update={"status": TrainingStatus.COMPLETED}).status == "COMPLETED"
    with pytest.raises(ValidationError):
        read.status = "NOT A STATUS"  # type: ignore[assignment]


def test_a_stored_value_no_enum_member_has_fails_loudly() -> None:
    """A document the storage did not write (a status no version of the code has) is not
    read as some default: the read raises."""
    doc = MODEL_VERSIONS.to_doc(
        ModelVersion(
            model_id="m",
            model_name="m",
            version="1.0.0",
            model_type=ModelType.CLASSIFICATION,
            created_date=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    assert MODEL_VERSIONS.from_doc(doc).status is ModelStatus.DEVELOPMENT
    with pytest.raises(ValueError, match="RETIRED"):
        MODEL_VERSIONS.from_doc({**doc, "status": "RETIRED"})
    job = TRAINING_JOBS.to_doc(TrainingJob(job_id="j", model_id="m", dataset_id="d"))
    with pytest.raises(ValueError, match="SOMETIMES"):
        TRAINING_JOBS.from_doc({**job, "retry_on": ["SOMETIMES"]})
    with pytest.raises(KeyError):
        TRAINING_JOBS.from_doc({k: v for k, v in job.items() if k != "dataset_id"})
