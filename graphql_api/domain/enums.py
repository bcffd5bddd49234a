"""The closed vocabularies of the registry and the job tracker."""

from enum import StrEnum


class TrainingStatus(StrEnum):
    """Status of an ML training job."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


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
