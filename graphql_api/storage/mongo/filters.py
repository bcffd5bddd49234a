"""Domain filters as MongoDB query documents (plain dicts: no driver here).

Every value reaches MongoDB as a literal inside an operator we chose (``$in``, ``$gte``, ...),
never as an operator or a field path of the client's choosing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from graphql_api.domain.queries import (
    DateRange,
    HyperparameterCondition,
    MetricCondition,
    ModelVersionFilter,
    TagCondition,
    TrainingJobFilter,
)


def _in(values: Sequence[Any] | None) -> dict[str, Any] | None:
    return None if values is None else {"$in": [str(v) for v in values]}


def _range(bounds: DateRange | None) -> dict[str, Any] | None:
    if bounds is None or (bounds.since is None and bounds.until is None):
        return None
    query: dict[str, Any] = {}
    if bounds.since is not None:
        query["$gte"] = bounds.since
    if bounds.until is not None:
        query["$lte"] = bounds.until
    return query


def _query(
    conditions: Mapping[str, dict[str, Any] | None], more: Iterable[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The field conditions, and ``more`` under ``$and`` (conditions that may name a field
    twice: two tags, two bounds of one metric in separate conditions, a name list and a
    substring)."""
    query: dict[str, Any] = {name: c for name, c in conditions.items() if c is not None}
    extra = list(more)
    if extra:
        query["$and"] = extra
    return query


def _tags(conditions: Sequence[TagCondition]) -> list[dict[str, Any]]:
    # $elemMatch: key and value of the same tag. DocumentDB serves no $elemMatch from an
    # index (explained: a scan), so "tags.key" alone narrows first, through the tags index.
    return [
        {
            "tags.key": c.key,
            "tags": {"$elemMatch": {"key": c.key, "value": {"$in": list(c.values)}}},
        }
        for c in conditions
    ]


def _metrics(conditions: Sequence[MetricCondition]) -> list[dict[str, Any]]:
    # Keys were checked (no '$', no '.'), so "metrics.<key>" is one stored field.
    queries = []
    for c in conditions:
        bounds = {
            op: value
            for op, value in (("$gt", c.gt), ("$gte", c.gte), ("$lt", c.lt), ("$lte", c.lte))
            if value is not None
        }
        queries.append({f"metrics.{c.key}": bounds})
    return queries


def _hyperparameters(conditions: Sequence[HyperparameterCondition]) -> list[dict[str, Any]]:
    # $eq, so a string value is never read as an operator document or a regex.
    return [{"hyperparameters." + ".".join(c.path): {"$eq": c.eq}} for c in conditions]


def _name_contains(value: str | None) -> list[dict[str, Any]]:
    if not value:
        return []
    return [{"model_name": {"$regex": re.escape(value), "$options": "i"}}]


def model_version_query(where: ModelVersionFilter) -> dict[str, Any]:
    return _query(
        {
            "_id": _in(where.model_ids),
            "model_name": _in(where.model_names),
            "status": _in(where.statuses),
            "model_type": _in(where.model_types),
            "created_date": _range(where.created),
            "deployed_date": _range(where.deployed),
        },
        [*_tags(where.tags), *_name_contains(where.name_contains), *_metrics(where.metrics)],
    )


def training_job_query(where: TrainingJobFilter) -> dict[str, Any]:
    return _query(
        {
            "_id": _in(where.job_ids),
            "model_id": _in(where.model_ids),
            "dataset_id": _in(where.dataset_ids),
            "status": _in(where.statuses),
            "created_date": _range(where.created),
            "started_date": _range(where.started),
            "completed_date": _range(where.completed),
        },
        [*_hyperparameters(where.hyperparameters), *_metrics(where.metrics)],
    )
