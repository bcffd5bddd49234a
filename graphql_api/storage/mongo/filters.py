"""Domain filters as MongoDB query documents (plain dicts: no driver here).

Every value reaches MongoDB as a literal inside an operator we chose (``$in``, ``$gte``, ...),
never as an operator or a field path of the client's choosing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graphql_api.domain.queries import DateRange, ModelVersionFilter, TrainingJobFilter


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


def _query(conditions: Mapping[str, dict[str, Any] | None]) -> dict[str, Any]:
    return {name: cond for name, cond in conditions.items() if cond is not None}


def model_version_query(where: ModelVersionFilter) -> dict[str, Any]:
    return _query(
        {
            "_id": _in(where.model_ids),
            "model_name": _in(where.model_names),
            "status": _in(where.statuses),
            "model_type": _in(where.model_types),
            "created_date": _range(where.created),
            "deployed_date": _range(where.deployed),
        }
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
        }
    )
