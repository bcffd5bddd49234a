"""Search conditions of the list filters (tags, name substring, metric bounds, hyperparameter
values) and ordering by a metric, with their checks (docs/input-policy.md, "Search")."""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from graphql_api.domain import artifacts, queries, text, validation, values
from graphql_api.domain.errors import ValidationError, ValidationRule


@strawberry.input(
    description="A tag condition: the version has the tag `key` with any of `values`."
)
class TagFilterInput:
    key: str = strawberry.field(description="The tag key (a tag key as stored: 1-128 characters).")
    values: list[str] = strawberry.field(description="Any of these values (1-100 of them).")


@strawberry.input(
    description="A metric condition: the record has metric `key` within every given bound "
    "(at least one bound; at most one lower and one upper). Records without the metric do "
    "not match."
)
class MetricFilterInput:
    key: str = strawberry.field(description="The metric key, e.g. val_acc.")
    gt: float | None = strawberry.field(default=None, description="Greater than.")
    gte: float | None = strawberry.field(default=None, description="Greater than or equal.")
    lt: float | None = strawberry.field(default=None, description="Less than.")
    lte: float | None = strawberry.field(default=None, description="Less than or equal.")


@strawberry.input(
    description="A hyperparameter condition: the job's value at `path` equals `eq`. An array "
    "there matches if any of its elements equals `eq`; 1 and 1.0 are equal."
)
class HyperparameterFilterInput:
    path: str = strawberry.field(
        description="Keys from the hyperparameters object down, joined by '.': "
        "`optimizer.lr` (1-8 keys, each a hyperparameter key)."
    )
    eq: JSON = strawberry.field(description="A JSON string, number or boolean (not null).")


@strawberry.enum(description="Direction of an ordering.")
class SortDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.input(
    description="Order by a metric's value, then by id (so ties keep one order across pages). "
    "Records without the metric come after all that have it, in either direction."
)
class MetricOrderInput:
    metric: str = strawberry.field(description="The metric key, e.g. val_acc.")
    direction: SortDirection = strawberry.field(
        default=SortDirection.DESC, description="DESC (default): highest first."
    )


def _too_many(field: str, items: list[Any], maximum: int, what: str) -> None:
    if len(items) > maximum:
        raise ValidationError(
            field, f"at most {maximum} {what} (got {len(items)})", rule=ValidationRule.max_items
        )


def tag_conditions(items: list[TagFilterInput] | None) -> tuple[queries.TagCondition, ...]:
    if items is None:
        return ()
    _too_many("filter.tags", items, queries.MAX_TAG_CONDITIONS, "tag conditions")
    conditions = []
    for index, item in enumerate(items):
        where = f"filter.tags[{index}]"
        key = validation.checked(
            lambda v: text.check_label(v, artifacts.MAX_TAG_KEY_LENGTH), item.key, f"{where}.key"
        )
        if not item.values:
            raise ValidationError(
                f"{where}.values", "must name at least one value", rule=ValidationRule.min
            )
        _too_many(f"{where}.values", item.values, 100, "values")
        tag_values = tuple(
            validation.checked(
                lambda v: text.check_label(v, artifacts.MAX_TAG_VALUE_LENGTH),
                value,
                f"{where}.values[{i}]",
            )
            for i, value in enumerate(item.values)
        )
        conditions.append(queries.TagCondition(key, tag_values))
    return tuple(conditions)


def name_contains(value: str | None) -> str | None:
    if value is None:
        return None
    return validation.checked(text.check_name, value, "filter.nameContains")


def metric_key(value: str, field: str) -> str:
    return validation.checked(lambda v: text.check_key(v, "metric"), value, field)


def _bound(value: float | None, field: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValidationError(field, "must be a finite number", rule=ValidationRule.finite_number)
    return value


def metric_conditions(items: list[MetricFilterInput] | None) -> tuple[queries.MetricCondition, ...]:
    if items is None:
        return ()
    _too_many("filter.metrics", items, queries.MAX_METRIC_CONDITIONS, "metric conditions")
    conditions = []
    for index, item in enumerate(items):
        where = f"filter.metrics[{index}]"
        key = metric_key(item.key, f"{where}.key")
        gt, gte = _bound(item.gt, f"{where}.gt"), _bound(item.gte, f"{where}.gte")
        lt, lte = _bound(item.lt, f"{where}.lt"), _bound(item.lte, f"{where}.lte")
        if all(b is None for b in (gt, gte, lt, lte)):
            raise ValidationError(
                where, "give at least one bound: gt, gte, lt or lte", rule=ValidationRule.required
            )
        if gt is not None and gte is not None:
            raise ValidationError(where, "give gt or gte, not both", rule=ValidationRule.range)
        if lt is not None and lte is not None:
            raise ValidationError(where, "give lt or lte, not both", rule=ValidationRule.range)
        low = gt if gt is not None else gte
        high = lt if lt is not None else lte
        if low is not None and high is not None and low > high:
            raise ValidationError(
                where,
                "the lower bound must not be above the upper bound",
                rule=ValidationRule.range,
            )
        conditions.append(queries.MetricCondition(key, gt=gt, gte=gte, lt=lt, lte=lte))
    return tuple(conditions)


def hyperparameter_conditions(
    items: list[HyperparameterFilterInput] | None,
) -> tuple[queries.HyperparameterCondition, ...]:
    if items is None:
        return ()
    _too_many(
        "filter.hyperparameters",
        items,
        queries.MAX_HYPERPARAMETER_CONDITIONS,
        "hyperparameter conditions",
    )
    conditions = []
    for index, item in enumerate(items):
        where = f"filter.hyperparameters[{index}]"
        if not isinstance(item.path, str) or not item.path:
            raise ValidationError(
                f"{where}.path", "must not be empty", rule=ValidationRule.min_length
            )
        keys = item.path.split(".")
        if len(keys) > values.MAX_HYPERPARAMETER_DEPTH:
            raise ValidationError(
                f"{where}.path",
                f"at most {values.MAX_HYPERPARAMETER_DEPTH} keys (got {len(keys)})",
                rule=ValidationRule.max_depth,
            )
        for key in keys:
            validation.checked(lambda v: text.check_key(v, "hyperparameter"), key, f"{where}.path")
        conditions.append(queries.HyperparameterCondition(tuple(keys), _scalar(item.eq, where)))
    return tuple(conditions)


def _scalar(value: object, where: str) -> queries.Scalar:
    field = f"{where}.eq"
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > values.MAX_INTEGER:
            raise ValidationError(field, "integers must fit in 64 bits", rule=ValidationRule.int64)
        return value
    if isinstance(value, float):
        _bound(value, field)
        return value
    if isinstance(value, str):
        if len(value) > values.MAX_STRING_LENGTH:
            raise ValidationError(
                field,
                f"must be at most {values.MAX_STRING_LENGTH} characters",
                rule=ValidationRule.max_length,
            )
        return value
    kind = "null" if value is None else type(value).__name__
    raise ValidationError(
        field, f"must be a JSON string, number or boolean, not {kind}", rule=ValidationRule.json
    )


def metric_order(value: MetricOrderInput | None) -> queries.MetricOrder | None:
    if value is None:
        return None
    return queries.MetricOrder(
        metric_key(value.metric, "orderByMetric.metric"),
        descending=value.direction == SortDirection.DESC,
    )
