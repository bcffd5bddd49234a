"""The closed vocabularies of the registry and the job tracker."""

from enum import StrEnum


class TrainingStatus(StrEnum):
    """Status of an ML training job."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class JobHealth(StrEnum):
    """Whether a RUNNING job's worker is alive (docs/workers.md)."""

    #: The lease has not lapsed (or the job has no worker).
    HEALTHY = "HEALTHY"
    #: The lease lapsed: no heartbeat in time. The worker may still come back.
    LATE = "LATE"
    #: Late past the grace: the job was failed with HEARTBEAT_LOST.
    LOST = "LOST"


class FailureKind(StrEnum):
    """Why a job failed, for people and for retry policies."""

    USER_CODE = "USER_CODE"
    INFRASTRUCTURE = "INFRASTRUCTURE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    PREEMPTED = "PREEMPTED"
    TIMED_OUT = "TIMED_OUT"
    HEARTBEAT_LOST = "HEARTBEAT_LOST"


class ModelStatus(StrEnum):
    """Lifecycle status of a model version.

    The seed lists development, testing and production; ``archived`` is our documented addition:
    the status a production version is retired to when another version of the same model name
    reaches production, or when an operator archives a version.
    """

    DEVELOPMENT = "development"
    TESTING = "testing"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class ModelType(StrEnum):
    """What kind of prediction a model makes."""

    PREDICTION = "prediction"
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
