"""Turning Pydantic's validation errors into the domain's ``ValidationError``.

Clients speak camelCase (``modelName``), the models snake_case; the error names the field the
way the client sent it, and the rule that failed.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic
from pydantic import TypeAdapter

from graphql_api.domain.errors import ValidationError
from graphql_api.domain.values import Hyperparameters, Metrics

T = TypeVar("T")

_METRICS: TypeAdapter[dict[str, float]] = TypeAdapter(Metrics)
_HYPERPARAMETERS: TypeAdapter[dict[str, Any]] = TypeAdapter(Hyperparameters)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def from_pydantic(error: pydantic.ValidationError, prefix: str = "") -> ValidationError:
    """The first problem, named by its field path and rule (Pydantic's error type)."""
    first = error.errors(include_url=False)[0]
    path = [
        camel(str(p)) if isinstance(p, str) and i == 0 else str(p)
        for i, p in enumerate(first["loc"])
    ]
    field = ".".join(filter(None, [prefix, *path])) or prefix or "input"
    message = first["msg"].removeprefix("Value error, ")
    return ValidationError(field, message, rule=first["type"])


def build(model: type[T], **fields: Any) -> T:
    """``model(**fields)`` with its validation failure as a domain error."""
    try:
        return model(**fields)
    except pydantic.ValidationError as error:
        raise from_pydantic(error) from None


def metrics(value: Any, field: str = "metrics") -> dict[str, float]:
    try:
        return _METRICS.validate_python(value)
    except pydantic.ValidationError as error:
        raise from_pydantic(error, prefix=field) from None


def hyperparameters(value: Any, field: str = "hyperparameters") -> dict[str, Any]:
    try:
        return _HYPERPARAMETERS.validate_python(value)
    except pydantic.ValidationError as error:
        raise from_pydantic(error, prefix=field) from None
