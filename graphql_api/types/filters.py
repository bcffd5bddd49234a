"""Filter inputs of the list queries, and their mapping to the domain's filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import strawberry

from graphql_api.domain import queries, text, validation
from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.types import search
from graphql_api.types.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.types.search import HyperparameterFilterInput, MetricFilterInput, TagFilterInput

MAX_FILTER_VALUES = 100


@strawberry.input(description="An inclusive time range; either end may be left open.")
class DateRangeInput:
    since: datetime | None = strawberry.field(default=None, description="Inclusive lower bound.")
    until: datetime | None = strawberry.field(default=None, description="Inclusive upper bound.")


@strawberry.input(
    description="Model versions matching every given condition (AND); a list "
    "matches any of its values (OR)."
)
class ModelVersionFilter:
    model_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Any of these model ids (at most 100)."
    )
    model_names: list[str] | None = strawberry.field(
        default=None, description="Any of these model names (at most 100)."
    )
    statuses: list[ModelStatus] | None = strawberry.field(
        default=None, description="Any of these lifecycle statuses."
    )
    model_types: list[ModelType] | None = strawberry.field(
        default=None, description="Any of these model types."
    )
    created_date: DateRangeInput | None = strawberry.field(
        default=None, description="Registered within this range."
    )
    deployed_date: DateRangeInput | None = strawberry.field(
        default=None, description="Deployed to production within this range."
    )
    tags: list[TagFilterInput] | None = strawberry.field(
        default=None,
        description="Every condition holds: the version has each tag key with any of its "
        "values (at most 10 conditions).",
    )
    name_contains: str | None = strawberry.field(
        default=None,
        description="The model name contains this, ignoring case (a scan of the matching "
        "versions' names: docs/real-server.md).",
    )
    metrics: list[MetricFilterInput] | None = strawberry.field(
        default=None,
        description="Every condition holds: the version has each metric within its bounds "
        "(at most 10 conditions).",
    )


@strawberry.input(
    description="Training jobs matching every given condition (AND); a list "
    "matches any of its values (OR)."
)
class TrainingJobFilter:
    job_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Any of these job ids (at most 100)."
    )
    model_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Jobs of any of these model versions (at most 100)."
    )
    dataset_ids: list[str] | None = strawberry.field(
        default=None, description="Jobs on any of these datasets (at most 100)."
    )
    statuses: list[TrainingStatus] | None = strawberry.field(
        default=None, description="Any of these statuses."
    )
    created_date: DateRangeInput | None = strawberry.field(
        default=None, description="Created within this range."
    )
    started_date: DateRangeInput | None = strawberry.field(
        default=None, description="Started within this range."
    )
    completed_date: DateRangeInput | None = strawberry.field(
        default=None, description="Ended (completed, failed or cancelled) within this range."
    )
    hyperparameters: list[HyperparameterFilterInput] | None = strawberry.field(
        default=None,
        description="Every condition holds: the job's hyperparameter at each path equals its "
        "value (at most 10 conditions).",
    )
    metrics: list[MetricFilterInput] | None = strawberry.field(
        default=None,
        description="Every condition holds: the job has each metric within its bounds "
        "(at most 10 conditions).",
    )


def _values(
    field: str,
    values: list[str] | list[strawberry.ID] | None,
    check: Callable[[str], str],
) -> tuple[str, ...] | None:
    """The values, each held to the policy of the field it matches (docs/input-policy.md): a
    value no record written under the policy can hold is an error, not an empty answer."""
    if values is None:
        return None
    if len(values) > MAX_FILTER_VALUES:
        raise ValidationError(
            f"filter.{field}", f"at most {MAX_FILTER_VALUES} values", rule=ValidationRule.max_items
        )
    return tuple(
        validation.checked(check, str(v), f"filter.{field}[{index}]")
        for index, v in enumerate(values)
    )


def _range(field: str, value: DateRangeInput | None) -> queries.DateRange | None:
    if value is None:
        return None
    for end, moment in (("since", value.since), ("until", value.until)):
        if moment is not None and moment.utcoffset() is None:
            raise ValidationError(
                f"filter.{field}.{end}",
                "must include a timezone (e.g. 2026-01-31T12:00:00Z)",
                rule=ValidationRule.timezone,
            )
    if value.since and value.until and value.since > value.until:
        raise ValidationError(
            f"filter.{field}", "since must not be after until", rule=ValidationRule.range
        )
    return queries.DateRange(value.since, value.until)


def model_version_filter(value: ModelVersionFilter | None) -> queries.ModelVersionFilter:
    if value is None:
        return queries.ModelVersionFilter()
    return queries.ModelVersionFilter(
        model_ids=_values("modelIds", value.model_ids, text.check_id),
        model_names=_values("modelNames", value.model_names, text.check_name),
        statuses=tuple(value.statuses) if value.statuses is not None else None,
        model_types=tuple(value.model_types) if value.model_types is not None else None,
        created=_range("createdDate", value.created_date),
        deployed=_range("deployedDate", value.deployed_date),
        tags=search.tag_conditions(value.tags),
        name_contains=search.name_contains(value.name_contains),
        metrics=search.metric_conditions(value.metrics),
    )


def training_job_filter(value: TrainingJobFilter | None) -> queries.TrainingJobFilter:
    if value is None:
        return queries.TrainingJobFilter()
    return queries.TrainingJobFilter(
        job_ids=_values("jobIds", value.job_ids, text.check_id),
        model_ids=_values("modelIds", value.model_ids, text.check_id),
        dataset_ids=_values("datasetIds", value.dataset_ids, text.check_name),
        statuses=tuple(value.statuses) if value.statuses is not None else None,
        created=_range("createdDate", value.created_date),
        started=_range("startedDate", value.started_date),
        completed=_range("completedDate", value.completed_date),
        hyperparameters=search.hyperparameter_conditions(value.hyperparameters),
        metrics=search.metric_conditions(value.metrics),
    )
