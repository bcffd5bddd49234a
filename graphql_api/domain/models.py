"""The seed's records, field for field, as Pydantic v2 models.

Field names, types and defaults follow ``shared/spec/ml_training_schema.md``. Our additions are
marked "(addition)" in their descriptions and all have defaults, so a record written to the
seed's shape still validates.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from graphql_api.domain.artifacts import ArtifactDigest, ArtifactUri, Tags
from graphql_api.domain.enums import (
    FailureKind,
    JobHealth,
    ModelStatus,
    ModelType,
    TrainingStatus,
)
from graphql_api.domain.semver import SemVer
from graphql_api.domain.text import is_new_input
from graphql_api.domain.values import (
    DEFAULT_QUEUE,
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
    # Workers (docs/workers.md). Jobs stored before these existed read with the defaults.
    queue: Identifier = Field(
        default=DEFAULT_QUEUE,
        description="(addition) The queue workers claim the job from (claimTrainingJob).",
    )
    worker_id: Identifier | None = Field(
        default=None,
        description="(addition) The worker holding the job's lease: set by claimTrainingJob "
        "(and startTrainingJob given a workerId).",
    )
    lease_expires_at: UtcDatetime | None = Field(
        default=None,
        description="(addition) When the current lease lapses unless the worker heartbeats.",
    )
    lease_seconds: int | None = Field(
        default=None,
        description="(addition) The lease's length: each heartbeat extends it by this much.",
    )
    last_heartbeat_at: UtcDatetime | None = Field(
        default=None,
        description="(addition) The worker's last sign of life: the claim or start that "
        "granted the lease, then each heartbeat.",
    )
    health: JobHealth = Field(
        default=JobHealth.HEALTHY,
        description="(addition) Whether the worker is alive: LATE once its lease lapsed, LOST "
        "when it was failed for it.",
    )
    failure_kind: FailureKind | None = Field(
        default=None,
        description="(addition) Why the job failed (None: failed before kinds existed).",
    )
    max_runtime_seconds: int | None = Field(
        default=None,
        ge=1,
        le=30 * 86400,
        description="(addition) How long the job may run; past it the sweep fails it with "
        "TIMED_OUT. None: no limit.",
    )
    # Retries (docs/workers.md): the policy, and where this job is in its chain of attempts.
    retry_max_attempts: int = Field(
        default=1, ge=1, le=20, description="(addition) Attempts in all, the first included."
    )
    retry_on: list[FailureKind] = Field(
        default_factory=list, description="(addition) Failure kinds that are retried."
    )
    retry_backoff_seconds: float = Field(
        default=0.0, ge=0, le=86400, description="(addition) Pause before the next attempt."
    )
    attempt: int = Field(default=1, ge=1, description="(addition) 1 for the first attempt.")
    retry_of: Identifier | None = Field(
        default=None, description="(addition) The attempt this one retries."
    )
    retry_root: Identifier | None = Field(
        default=None, description="(addition) The chain's first attempt (None: this is it)."
    )
    retry_due_at: UtcDatetime | None = Field(
        default=None,
        description="(addition) When the sweep creates the automatic next attempt.",
    )
    retried_by: Identifier | None = Field(
        default=None, description="(addition) The attempt that retried this one."
    )
    failure_retryable: bool = Field(
        default=False,
        description="(addition) Whether the failure gets an automatic next attempt.",
    )
    failure_exit_code: int | None = Field(
        default=None, description="(addition) The training process's exit code, if reported."
    )
    cancel_requested_at: UtcDatetime | None = Field(
        default=None,
        description="(addition) When a graceful cancel was asked for (cancelTrainingJob with "
        "graceSeconds on a RUNNING job); the worker acknowledges it.",
    )
    cancel_deadline_at: UtcDatetime | None = Field(
        default=None,
        description="(addition) When the sweep cancels the job if the worker has not.",
    )
    #: Never shown to clients, nor copied into events (services.changes): the SHA-256 of the
    #: lease token, so that what is stored cannot be replayed as a token.
    lease_token_hash: str | None = Field(
        default=None,
        description="(addition, internal) SHA-256 of the lease token the fenced writes carry.",
    )


class LeasedTrainingJob(TrainingJob):
    """A job in the answer of the change that just granted its lease (claimTrainingJob,
    startTrainingJob): the only place the lease token is ever shown. Never stored."""

    granted_lease_token: str = Field(description="The lease token (docs/workers.md).")
