"""The seed's records, field for field, as Pydantic v2 models.

Field names, types and defaults follow ``shared/spec/ml_training_schema.md``. Our additions are
marked "(addition)" in their descriptions and all have defaults, so a record written to the
seed's shape still validates.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from graphql_api.domain.artifacts import ArtifactDigest, ArtifactUri, Tags
from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.semver import SemVer
from graphql_api.domain.text import is_new_input
from graphql_api.domain.values import (
    FreeText,
    Hyperparameters,
    Identifier,
    Metrics,
    Name,
    Url,
    UtcDatetime,
    utc_now,
)

_CONFIG = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


class ModelVersion(BaseModel):
    """Versioned ML model record."""

    model_config = ConfigDict(**_CONFIG, protected_namespaces=())

    model_id: Identifier = Field(description="Model identifier (primary key).")
    model_name: Name = Field(description="Model name, shared by all versions of one model.")
    version: str = Field(
        description="Semantic version (SemVer 2.0.0), unique per model name; ordered by "
        "SemVer precedence, not string order."
    )
    model_type: ModelType = Field(description="Type: prediction, classification or regression.")
    status: ModelStatus = Field(
        default=ModelStatus.DEVELOPMENT,
        description="Lifecycle: development -> testing -> production; archived when retired.",
    )
    metrics: Metrics = Field(
        default_factory=dict, description="Performance metrics, e.g. accuracy, f1, mse."
    )
    created_date: UtcDatetime = Field(description="Creation timestamp (UTC).")
    deployed_date: UtcDatetime | None = Field(
        default=None, description="When the version reached production (UTC)."
    )
    # Additions to the seed: what a deployment needs (domain/artifacts.py). Records stored
    # before them load with these defaults.
    artifact_uri: ArtifactUri | None = Field(
        default=None,
        description="(addition) Where the weights are: s3, gs, az, abfs(s), wasbs, hdfs, "
        "http(s) or file URI. Fixed once the version has left development.",
    )
    artifact_digest: ArtifactDigest | None = Field(
        default=None,
        description="(addition) sha256:<64 hex> of the artifact, to check what was fetched. "
        "Fixed once the version has left development.",
    )
    description: FreeText | None = Field(
        default=None, description="(addition) What this version is, for people."
    )
    tags: Tags = Field(
        default_factory=list, description="(addition) Key/value labels, each key once."
    )
    created_by: str | None = Field(
        default=None,
        description="(addition) Name of the API key that registered it (null in open mode "
        "and for versions registered before this field existed).",
    )
    source_job_id: Identifier | None = Field(
        default=None, description="(addition) The COMPLETED training job that produced it."
    )

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str, info: ValidationInfo) -> str:
        if is_new_input(info):
            SemVer.parse(value)
        else:
            SemVer.parse_stored(value)
        return value

    @property
    def semver(self) -> SemVer:
        """The version parsed (resolveModelVersion matches ranges against it)."""
        return SemVer.parse_stored(self.version)


class TrainingJob(BaseModel):
    """ML training job execution."""

    model_config = ConfigDict(**_CONFIG, protected_namespaces=())

    job_id: Identifier = Field(description="Unique job identifier (primary key).")
    model_id: Identifier = Field(description="The model version this job trains.")
    status: TrainingStatus = Field(
        default=TrainingStatus.PENDING,
        description="PENDING -> RUNNING -> COMPLETED | FAILED; CANCELLED from PENDING or "
        "RUNNING. COMPLETED, FAILED and CANCELLED are final.",
    )
    hyperparameters: Hyperparameters = Field(
        default_factory=dict, description="Training hyperparameters (any JSON object)."
    )
    dataset_id: Name = Field(description="Training dataset.")
    started_date: UtcDatetime | None = Field(
        default=None, description="When the job started running (UTC)."
    )
    completed_date: UtcDatetime | None = Field(
        default=None, description="When the job reached a final status (UTC)."
    )
    metrics: Metrics = Field(default_factory=dict, description="Training metrics.")
    logs_url: Url | None = Field(
        default=None,
        description="Training logs location: an http(s) or object-storage URL (s3://, gs://, ...).",
    )
    # Additions to the seed.
    created_date: UtcDatetime = Field(
        default_factory=utc_now,
        description="(addition) When the job was created (UTC); lists sort by it.",
    )
    failure_reason: FreeText | None = Field(
        default=None,
        description="(addition) Why the job failed, as reported with failTrainingJob.",
    )
