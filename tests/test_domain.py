"""Unit tests of the pure domain: SemVer precedence, the transition tables, value rules."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone

import pydantic
import pytest

from graphql_api.domain.enums import ModelStatus, TrainingStatus
from graphql_api.domain.lifecycle import (
    FINAL_TRAINING_STATUSES,
    can_model_transition,
    can_train_transition,
)
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.semver import SemVer

# The precedence example from semver.org section 11, in ascending order.
SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
    "10.0.0",
    "10.0.10",
]


def test_sort_key_orders_by_semver_precedence_not_string_order() -> None:
    shuffled = SPEC_ORDER[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=lambda v: SemVer.parse(v).sort_key) == SPEC_ORDER


def test_numeric_prerelease_identifiers_sort_before_alphanumeric_and_by_value() -> None:
    assert SemVer.parse("1.0.0-2") < SemVer.parse("1.0.0-10") < SemVer.parse("1.0.0-a")
    assert SemVer.parse("1.0.0-a.b") < SemVer.parse("1.0.0-a-b")


def test_build_metadata_does_not_change_precedence() -> None:
    assert SemVer.parse("1.2.3+build.7") == SemVer.parse("1.2.3+other")
    assert str(SemVer.parse("1.2.3-rc.1+build.7")) == "1.2.3-rc.1+build.7"


@pytest.mark.parametrize(
    "bad", ["1.0", "v1.0.0", "01.0.0", "1.0.0-01", "1.0.0-", "1.0.0+", "1..0", "", "1.0.0 "]
)
def test_invalid_versions_are_refused_with_the_rule(bad: str) -> None:
    with pytest.raises(ValueError, match="Semantic Versioning"):
        SemVer.parse(bad)


def test_training_transition_table_matches_the_lifecycle() -> None:
    allowed = {
        (TrainingStatus.PENDING, TrainingStatus.RUNNING),
        (TrainingStatus.RUNNING, TrainingStatus.COMPLETED),
        (TrainingStatus.RUNNING, TrainingStatus.FAILED),
        (TrainingStatus.PENDING, TrainingStatus.CANCELLED),
        (TrainingStatus.RUNNING, TrainingStatus.CANCELLED),
    }
    for current in TrainingStatus:
        for target in TrainingStatus:
            assert can_train_transition(current, target) == ((current, target) in allowed)
    for final in FINAL_TRAINING_STATUSES:
        assert not any(can_train_transition(final, t) for t in TrainingStatus)


def test_model_transition_table_matches_the_lifecycle() -> None:
    d, t, p, a = (
        ModelStatus.DEVELOPMENT,
        ModelStatus.TESTING,
        ModelStatus.PRODUCTION,
        ModelStatus.ARCHIVED,
    )
    allowed = {(d, t), (t, p), (d, a), (t, a), (p, a), (a, p)}  # (a, p): a rollback
    for current in ModelStatus:
        for target in ModelStatus:
            assert can_model_transition(current, target) == ((current, target) in allowed)


def _version(**overrides: object) -> ModelVersion:
    fields: dict[str, object] = {
        "model_id": "m1",
        "model_name": "churn",
        "version": "1.0.0",
        "model_type": "classification",
        "created_date": datetime.now(UTC),
    }
    return ModelVersion(**{**fields, **overrides})


def test_seed_defaults() -> None:
    version = _version()
    assert version.status is ModelStatus.DEVELOPMENT
    assert version.metrics == {} and version.deployed_date is None
    job = TrainingJob(job_id="j1", model_id="m1", dataset_id="d1")
    assert job.status is TrainingStatus.PENDING
    assert job.hyperparameters == {} and job.metrics == {}
    assert job.started_date is None and job.completed_date is None and job.logs_url is None


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"model_type": "clustering"}, "model_type", "classification"),
        ({"status": "retired"}, "status", "development"),
        ({"version": "1.0"}, "version", "Semantic Versioning"),
        ({"metrics": {"f1": float("nan")}}, "metrics", "finite"),
        ({"metrics": {"f1": float("inf")}}, "metrics", "finite"),
        ({"metrics": {"$where": 1.0}}, "metrics", "must not start with '$'"),
        ({"metrics": {"a.b": 1.0}}, "metrics", "must not contain '.'"),
        ({"metrics": {"f1": "0.9"}}, "metrics", "valid number"),
        ({"created_date": datetime(2026, 1, 1)}, "created_date", "timezone-aware"),
    ],
)
def test_model_version_rules(overrides: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        _version(**overrides)
    error = caught.value.errors()[0]
    assert error["loc"][0] == field
    assert fragment in str(caught.value)


def test_datetimes_are_normalised_to_utc_milliseconds() -> None:
    paris = timezone(timedelta(hours=1))
    version = _version(created_date=datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=paris))
    assert version.created_date == datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert version.created_date.tzinfo is UTC


@pytest.mark.parametrize(
    ("hyperparameters", "fragment"),
    [
        ({"opt": {"$set": 1}}, "must not start with '$'"),
        ({"opt": {"lr.max": 1}}, "must not contain '.'"),
        ({"lr": float("nan")}, "finite"),
        ({"deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}, "at most 8 levels"),
        ({"big": 2**70}, "64 bits"),
    ],
)
def test_hyperparameter_rules(hyperparameters: dict[str, object], fragment: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=re.escape(fragment)):
        TrainingJob(job_id="j", model_id="m", dataset_id="d", hyperparameters=hyperparameters)


def test_nested_hyperparameters_are_kept_as_given() -> None:
    params = {"optimizer": {"name": "adamw", "betas": [0.9, 0.999]}, "epochs": 3, "aug": None}
    job = TrainingJob(job_id="j", model_id="m", dataset_id="d", hyperparameters=params)
    assert job.hyperparameters == params
