"""Records to MongoDB documents and back.

Documents use ``_id`` for the record's key and a revision ``rev`` that every update bumps
(see ``mongo.collection.UpdateGuard``); they carry derived fields that only storage needs:
``version_sort_key`` (SemVer precedence as a sortable string) and, once a version reached
production, ``production_revision`` (see ``mongo.model_versions``). Documents written before the
production pointer existed also carry ``production_slot``, which nothing reads any more.

Reads trust what this module wrote: they rebuild models without re-running validation (the hot
path of every list query) and only restore what BSON loses: the UTC zone of datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from graphql_api.domain.artifacts import Tag
from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.semver import version_sort_key


def _utc(value: datetime) -> datetime:
    # MongoDB stores UTC; drivers hand it back naive or with a zone object of their own.
    return value.replace(tzinfo=UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def model_version_to_doc(version: ModelVersion) -> dict[str, Any]:
    return {
        "_id": version.model_id,
        "model_name": version.model_name,
        "version": version.version,
        "version_sort_key": version_sort_key(version.version),
        "model_type": version.model_type.value,
        "status": version.status.value,
        "metrics": dict(version.metrics),
        "created_date": version.created_date,
        "deployed_date": version.deployed_date,
        "artifact_uri": version.artifact_uri,
        "artifact_digest": version.artifact_digest,
        "description": version.description,
        "tags": tags_to_doc(version.tags),
        "created_by": version.created_by,
        "source_job_id": version.source_job_id,
        # "" for every new record; see MongoModelVersionStore._ensure_precedence_unique.
        "precedence_twin": "",
        "rev": 0,
    }


def model_version_from_doc(doc: dict[str, Any]) -> ModelVersion:
    return ModelVersion.model_construct(
        model_id=doc["_id"],
        model_name=doc["model_name"],
        version=doc["version"],
        model_type=ModelType(doc["model_type"]),
        status=ModelStatus(doc["status"]),
        metrics=doc.get("metrics") or {},
        created_date=_utc(doc["created_date"]),
        deployed_date=_utc_or_none(doc.get("deployed_date")),
        # Absent from documents stored before deployable versions: the model's defaults.
        artifact_uri=doc.get("artifact_uri"),
        artifact_digest=doc.get("artifact_digest"),
        description=doc.get("description"),
        tags=[Tag.model_construct(key=t["key"], value=t["value"]) for t in doc.get("tags") or []],
        created_by=doc.get("created_by"),
        source_job_id=doc.get("source_job_id"),
    )


def tags_to_doc(tags: list[Tag]) -> list[dict[str, str]]:
    # An array of {key, value}: one multikey index serves a filter on any key and value.
    return [{"key": t.key, "value": t.value} for t in tags]


def training_job_to_doc(job: TrainingJob) -> dict[str, Any]:
    doc = job.model_dump(mode="python")
    doc["_id"] = doc.pop("job_id")
    doc["status"] = job.status.value
    doc["rev"] = 0
    return doc


def training_job_from_doc(doc: dict[str, Any]) -> TrainingJob:
    return TrainingJob.model_construct(
        job_id=doc["_id"],
        model_id=doc["model_id"],
        status=TrainingStatus(doc["status"]),
        hyperparameters=doc.get("hyperparameters") or {},
        dataset_id=doc["dataset_id"],
        started_date=_utc_or_none(doc.get("started_date")),
        completed_date=_utc_or_none(doc.get("completed_date")),
        metrics=doc.get("metrics") or {},
        logs_url=doc.get("logs_url"),
        created_date=_utc(doc["created_date"]),
        failure_reason=doc.get("failure_reason"),
    )


def event_to_doc(event: ChangeEvent) -> dict[str, Any]:
    doc = event.model_dump(mode="python")
    for optional in ("alias", "previous_model_id", "reason"):
        if doc[optional] is None:
            del doc[optional]  # most events: keep their stored shape as before
    doc["_id"] = doc.pop("seq")
    doc["entity"] = event.entity.value
    doc["kind"] = event.kind.value
    return doc


def event_from_doc(doc: dict[str, Any]) -> ChangeEvent:
    snapshot = dict(doc["snapshot"])
    for key, value in snapshot.items():
        if isinstance(value, datetime):
            snapshot[key] = _utc(value)
    return ChangeEvent.model_construct(
        seq=doc["_id"],
        entity=EntityKind(doc["entity"]),
        entity_id=doc["entity_id"],
        kind=ChangeKind(doc["kind"]),
        previous_status=doc.get("previous_status"),
        status=doc["status"],
        occurred_at=_utc(doc["occurred_at"]),
        model_id=doc["model_id"],
        model_name=doc.get("model_name"),
        actor=doc.get("actor"),
        snapshot=snapshot,
        alias=doc.get("alias"),
        previous_model_id=doc.get("previous_model_id"),
        reason=doc.get("reason"),
    )
