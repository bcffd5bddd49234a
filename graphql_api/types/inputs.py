"""Inputs and result unions of the mutations."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from graphql_api.domain.enums import FailureKind
from graphql_api.types.enums import ModelType
from graphql_api.types.errors import MutationError
from graphql_api.types.model_version import ModelVersionType
from graphql_api.types.tags import TagInput
from graphql_api.types.training_job import TrainingJobType


@strawberry.input(description="A new model version; it starts in development.")
class RegisterModelVersionInput:
    model_name: str = strawberry.field(
        description="Model name: 1-200 visible characters, single spaces inside, NFC "
        "(docs/input-policy.md)."
    )
    version: str = strawberry.field(
        description="SemVer 2.0.0 version, new for this model name (e.g. 1.4.0, 2.0.0-rc.1); "
        "build metadata alone does not make a new version."
    )
    model_type: ModelType = strawberry.field(
        description="prediction, classification or regression."
    )
    metrics: JSON | None = strawberry.field(
        default=None,
        description="Initial metrics: an object of finite numbers (at most 256; integers stay "
        "integers); keys must not start with '$' or contain '.'.",
    )
    model_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Choose the id (letters, digits, '.', '_', ':', '-'; up to 128); "
        "generated when omitted. Reusing an id is a ConflictError, so retries are safe.",
    )
    artifact_uri: str | None = strawberry.field(
        default=None,
        description="Where the weights are: an s3, gs, az, abfs(s), wasbs, hdfs, http(s) URI "
        "with a bucket or host, or file:///absolute/path. Changeable only in development.",
    )
    artifact_digest: str | None = strawberry.field(
        default=None,
        description="sha256: and 64 lowercase hex digits. Changeable only in development.",
    )
    description: str | None = strawberry.field(
        default=None, description="Free text, up to 4,096 characters."
    )
    tags: list[TagInput] | None = strawberry.field(
        default=None, description="At most 50 key/value labels, each key once."
    )
    source_job_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The COMPLETED training job that produced this version (lineage: "
        "ModelVersion.sourceJob, TrainingJob.producedModelVersions).",
    )


@strawberry.input(
    description="Automatic retries: a failure of a listed kind, with attempts left, creates "
    "the next attempt (a new PENDING job, same hyperparameters) after the backoff."
)
class RetryPolicyInput:
    max_attempts: int = strawberry.field(description="Attempts in all, the first included: 1-20.")
    retry_on: list[FailureKind] = strawberry.field(description="The failure kinds retried.")
    backoff_seconds: float = strawberry.field(
        default=0.0, description="Pause before each next attempt: 0-86400 s."
    )


@strawberry.input(description="A new training job; it starts PENDING.")
class CreateTrainingJobInput:
    model_id: strawberry.ID = strawberry.field(
        description="An existing model version that is not archived."
    )
    dataset_id: str = strawberry.field(
        description="The training dataset: 1-200 visible characters (docs/input-policy.md)."
    )
    hyperparameters: JSON | None = strawberry.field(
        default=None,
        description="Any JSON object (objects and arrays nested up to 8 levels, the object "
        "itself being level 1; 1,000 values); keys must not "
        "start with '$' or contain '.'.",
    )
    job_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Choose the id; generated when omitted. Reusing an id is a ConflictError.",
    )
    logs_url: str | None = strawberry.field(
        default=None,
        description="Training logs location: an http(s), s3, gs, az, abfs(s) or hdfs URL.",
    )
    retry_policy: RetryPolicyInput | None = strawberry.field(
        default=None, description="Automatic retries; none when omitted."
    )
    max_runtime_seconds: int | None = strawberry.field(
        default=None,
        description="How long the job may run (1 s to 30 days); past it the server fails it "
        "with failure.kind TIMED_OUT. No limit when omitted.",
    )
    queue: str | None = strawberry.field(
        default=None,
        description="The queue workers claim it from (claimTrainingJob): an identifier like "
        'jobId; "default" when omitted.',
    )


ModelVersionResult = Annotated[
    ModelVersionType | MutationError,
    strawberry.union(
        "ModelVersionResult",
        description="The model version after the change, or why nothing changed.",
    ),
]

TrainingJobResult = Annotated[
    TrainingJobType | MutationError,
    strawberry.union(
        "TrainingJobResult",
        description="The training job after the change, or why nothing changed.",
    ),
]
