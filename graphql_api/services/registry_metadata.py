"""What a deployment needs besides the status: the artifact, metadata and lineage of a version.

``ModelRegistryService.register`` takes them (``VersionDetails``) when a version is registered;
``ModelMetadataService.update`` changes what may change later: the description and tags at any
time, the artifact only while the version is in development (what was tested must be what is
deployed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graphql_api.domain import artifacts, text, validation
from graphql_api.domain.artifacts import Tag
from graphql_api.domain.enums import ModelStatus, TrainingStatus
from graphql_api.domain.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
    ValidationRule,
    status_name,
)
from graphql_api.domain.lifecycle import VersionTransitions
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.updates import VersionMetadata
from graphql_api.services.outbox import MAX_SETTLE_ATTEMPTS, Outbox, new_pending
from graphql_api.storage.base import RecordBusy, Storage

RESOURCE = "ModelVersion"
#: Versions one training job may produce: ``TrainingJob.producedModelVersions`` lists them
#: all, so the stored number is bounded (registration refuses one more).
MAX_VERSIONS_PER_JOB = 100
#: Statuses in which the artifact may still change.
ARTIFACT_EDITABLE = frozenset({ModelStatus.DEVELOPMENT})
#: The artifact's fields: (the API's name, the record's).
ARTIFACT_KEYS = (("artifactUri", "artifact_uri"), ("artifactDigest", "artifact_digest"))
# The description and tags may change in every status (VersionTransitions.UPDATE: an archived
# version may still be described, e.g. why it was withdrawn).


@dataclass(frozen=True)
class VersionDetails:
    """Set at registration, all optional. ``tags`` as (key, value) pairs."""

    artifact_uri: str | None = None
    artifact_digest: str | None = None
    description: str | None = None
    tags: Sequence[tuple[str, str]] | None = None
    source_job_id: str | None = None


def checked_tags(pairs: Sequence[tuple[str, str]], field: str = "tags") -> list[Tag]:
    """Tags from input, every rule applied; a ValidationError names the tag (``tags[2].key``)."""
    tags = [Tag.model_construct(key=key, value=value) for key, value in pairs]
    try:
        return artifacts.check_tags(tags)
    except text.PolicyError as error:
        raise ValidationError(f"{field}{error.path}", error.message, rule=error.rule) from None


def checked_description(value: str) -> str:
    return validation.checked(text.check_text, value, "description")


def checked_artifact_uri(value: str) -> str:
    return validation.checked(artifacts.check_artifact_uri, value, "artifactUri")


def checked_artifact_digest(value: str) -> str:
    return validation.checked(artifacts.check_artifact_digest, value, "artifactDigest")


class ModelMetadataService:
    def __init__(self, storage: Storage) -> None:
        self._versions = storage.model_versions
        self._jobs = storage.training_jobs
        self._outbox = Outbox(storage)

    async def registration_fields(self, details: VersionDetails) -> dict[str, Any]:
        """The model fields ``details`` sets, each checked; the source job must exist, be
        COMPLETED, and have produced fewer than ``MAX_VERSIONS_PER_JOB`` versions."""
        fields: dict[str, Any] = {}
        if details.artifact_uri is not None:
            fields["artifact_uri"] = checked_artifact_uri(details.artifact_uri)
        if details.artifact_digest is not None:
            fields["artifact_digest"] = checked_artifact_digest(details.artifact_digest)
        if details.description is not None:
            fields["description"] = checked_description(details.description)
        if details.tags is not None:
            fields["tags"] = checked_tags(details.tags)
        if details.source_job_id is not None:
            fields["source_job_id"] = await self._completed_job(details.source_job_id)
        return fields

    async def _completed_job(self, job_id: str) -> str:
        validation.checked(text.check_id, job_id, "sourceJobId")
        job = await self._jobs.get(job_id)
        if job is None:
            raise NotFoundError("TrainingJob", job_id, field="sourceJobId")
        if job.status is not TrainingStatus.COMPLETED:
            raise ValidationError(
                "sourceJobId",
                f"TrainingJob {job_id!r} is {status_name(job.status)}: a version can only come "
                "from a COMPLETED job",
                rule=ValidationRule.job_status,
            )
        produced = await self._versions.count_produced_by(job_id)
        if produced >= MAX_VERSIONS_PER_JOB:
            raise ValidationError(
                "sourceJobId",
                f"TrainingJob {job_id!r} already produced {produced} versions, the limit "
                f"is {MAX_VERSIONS_PER_JOB}",
                rule=ValidationRule.max_items,
            )
        return job_id

    async def update(
        self,
        model_id: str,
        *,
        description: str | None = None,
        tags: Sequence[tuple[str, str]] | None = None,
        artifact_uri: str | None = None,
        artifact_digest: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Change what is given (None: unchanged; ``description: ""`` clears it, ``tags``
        replaces them all). The artifact only in development: a ValidationError (rule
        ``immutable``) afterwards, unless it is sent as stored. Records an UPDATED event
        (none when nothing changes)."""
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = checked_description(description) if description else None
        if tags is not None:
            changes["tags"] = checked_tags(tags)
        if artifact_uri is not None:
            changes["artifact_uri"] = checked_artifact_uri(artifact_uri)
        if artifact_digest is not None:
            changes["artifact_digest"] = checked_artifact_digest(artifact_digest)
        # The artifact's fields given: (the API's name, the record's).
        artifact = [(field, key) for field, key in ARTIFACT_KEYS if key in changes]
        if not changes:
            raise ValidationError(
                "input",
                "name at least one of description, tags, artifactUri, artifactDigest",
                rule=ValidationRule.required,
            )
        allowed = ARTIFACT_EDITABLE if artifact else VersionTransitions.UPDATE.sources
        updated = await self._update(model_id, allowed, VersionMetadata(**changes), actor)
        if updated is None:
            current = await self._versions.get(model_id)
            if current is None:
                raise NotFoundError(RESOURCE, model_id, field="modelId")
            differing = [field for field, key in artifact if changes[key] != getattr(current, key)]
            if artifact and not differing:
                # The artifact as stored, sent again (a client sending the whole record back,
                # a retry): nothing to refuse. No status leads back to DEVELOPMENT, so the
                # artifact read here is the one it keeps.
                return await self._update_rest(model_id, current, changes, actor)
            raise ValidationError(
                differing[0],
                f"{RESOURCE} {model_id!r} is {status_name(current.status)}: its artifact is "
                "fixed once it has left DEVELOPMENT (register a new version for a new "
                "artifact; nothing was changed)",
                rule=ValidationRule.immutable,
            )
        return updated

    async def _update_rest(
        self, model_id: str, current: ModelVersion, changes: dict[str, Any], actor: str | None
    ) -> ModelVersion:
        """``changes`` but the artifact's (equal to ``current``'s): written as usual, or
        ``current`` itself when nothing else was given (no change, no event)."""
        artifact = {key for _, key in ARTIFACT_KEYS}
        rest = {k: v for k, v in changes.items() if k not in artifact}
        if not rest:
            return current
        allowed = VersionTransitions.UPDATE.sources
        updated = await self._update(model_id, allowed, VersionMetadata(**rest), actor)
        if updated is None:  # deleted meanwhile
            raise NotFoundError(RESOURCE, model_id, field="modelId")
        return updated

    async def _update(
        self,
        model_id: str,
        allowed: frozenset[ModelStatus],
        change: VersionMetadata,
        actor: str | None,
    ) -> ModelVersion | None:
        """The change written with its UPDATED event pending (one write: ``services.outbox``),
        then the event relayed; None if the version is missing or in another status. A change of
        the version still pending from someone else is relayed first (the events keep the
        order of the changes)."""
        for _ in range(MAX_SETTLE_ATTEMPTS):
            pending = new_pending(VersionTransitions.UPDATE.kind, None, actor, keeps_status=True)
            try:
                updated = await self._versions.update(model_id, allowed, [change], pending=pending)
            except RecordBusy:
                await self._outbox.settle_version(model_id)
                continue
            if updated is not None:
                await self._outbox.publish_version(updated, pending)
            return updated
        raise ConflictError(
            f"{RESOURCE} {model_id!r} is being changed by too many requests at once; retry",
            field="modelId",
        )

    async def source_jobs(self, job_ids: Sequence[str]) -> dict[str, TrainingJob]:
        """The jobs versions name as their source, by id (one round trip)."""
        return await self._jobs.get_many(job_ids)

    async def produced_by(self, job_ids: Sequence[str]) -> dict[str, list[ModelVersion]]:
        return await self._versions.produced_by(job_ids)
