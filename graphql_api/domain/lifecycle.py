"""The lifecycle transition tables: the one place that says which status may follow which.

Services consult these tables and storage applies each transition as a conditional update on
the current status, so two concurrent callers can never both make the same move.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from graphql_api.domain.enums import ModelStatus, TrainingStatus

#: For each target status of a training job, the statuses it may be reached from.
TRAINING_TRANSITIONS: Mapping[TrainingStatus, frozenset[TrainingStatus]] = MappingProxyType(
    {
        TrainingStatus.RUNNING: frozenset({TrainingStatus.PENDING}),
        TrainingStatus.COMPLETED: frozenset({TrainingStatus.RUNNING}),
        TrainingStatus.FAILED: frozenset({TrainingStatus.RUNNING}),
        TrainingStatus.CANCELLED: frozenset({TrainingStatus.PENDING, TrainingStatus.RUNNING}),
    }
)

#: Statuses a job never leaves.
FINAL_TRAINING_STATUSES: frozenset[TrainingStatus] = frozenset(
    {TrainingStatus.COMPLETED, TrainingStatus.FAILED, TrainingStatus.CANCELLED}
)

#: Statuses in which a job may report metrics before it ends.
METRICS_REPORTING_STATUSES: frozenset[TrainingStatus] = frozenset({TrainingStatus.RUNNING})

#: For each target status of a model version, the statuses it may be reached from.
#: Promotion is one step at a time; archiving is allowed from any live status; a rollback puts
#: an archived version that was in production back (services/registry_rollback.py).
MODEL_TRANSITIONS: Mapping[ModelStatus, frozenset[ModelStatus]] = MappingProxyType(
    {
        ModelStatus.TESTING: frozenset({ModelStatus.DEVELOPMENT}),
        # ARCHIVED: only by rollbackModelVersion, for a version that was in production before.
        ModelStatus.PRODUCTION: frozenset({ModelStatus.TESTING, ModelStatus.ARCHIVED}),
        ModelStatus.ARCHIVED: frozenset(
            {ModelStatus.DEVELOPMENT, ModelStatus.TESTING, ModelStatus.PRODUCTION}
        ),
    }
)

#: ``promoteModelVersion`` moves one step along this path.
PROMOTION_PATH: Mapping[ModelStatus, ModelStatus] = MappingProxyType(
    {
        ModelStatus.DEVELOPMENT: ModelStatus.TESTING,
        ModelStatus.TESTING: ModelStatus.PRODUCTION,
    }
)

#: Statuses in which a model version's metrics may still change.
MODEL_METRICS_EDITABLE: frozenset[ModelStatus] = frozenset(
    {ModelStatus.DEVELOPMENT, ModelStatus.TESTING, ModelStatus.PRODUCTION}
)


def training_sources(target: TrainingStatus) -> frozenset[TrainingStatus]:
    """Statuses a job may be in to move to ``target`` (empty when nothing leads there)."""
    return TRAINING_TRANSITIONS.get(target, frozenset())


def model_sources(target: ModelStatus) -> frozenset[ModelStatus]:
    """Statuses a model version may be in to move to ``target``."""
    return MODEL_TRANSITIONS.get(target, frozenset())


def can_train_transition(current: TrainingStatus, target: TrainingStatus) -> bool:
    return current in training_sources(target)


def can_model_transition(current: ModelStatus, target: ModelStatus) -> bool:
    return current in model_sources(target)
