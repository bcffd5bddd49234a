"""The domain enums, exposed to GraphQL.

The domain classes are used directly: ``strawberry.enum`` records the GraphQL definition (its
name and description) on the class itself and returns that same class, so calling it here only
adds the descriptions, and the names re-exported below are the domain enums (valid types for
mypy). Importing this module before the schema is built keeps the descriptions there.
"""

from __future__ import annotations

import strawberry

from graphql_api.domain.enums import FailureKind, JobHealth, ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.events import ChangeKind
from graphql_api.domain.queries import ModelVersionOrder, TrainingJobOrder

__all__ = [
    "ChangeKind",
    "FailureKind",
    "JobHealth",
    "ModelStatus",
    "ModelType",
    "ModelVersionOrder",
    "TrainingJobOrder",
    "TrainingStatus",
]

strawberry.enum(TrainingStatus, description="Status of a training job.")
strawberry.enum(
    ModelStatus,
    description="Lifecycle status of a model version: development -> testing -> production; "
    "archived (an addition to the seed) when retired or withdrawn.",
)
strawberry.enum(ModelType, description="What kind of prediction a model makes.")
strawberry.enum(ChangeKind, description="What a recorded change did.")
strawberry.enum(
    ModelVersionOrder,
    description="Orderings of model versions; VERSION_* follow SemVer precedence.",
)
strawberry.enum(TrainingJobOrder, description="Orderings of jobs.")
strawberry.enum(
    JobHealth,
    description="Whether a job's worker is alive: LATE once its lease lapsed (no heartbeat in "
    "time), LOST when the job was failed for it (docs/workers.md).",
)
strawberry.enum(FailureKind, description="Why a job failed.")
