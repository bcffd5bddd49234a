"""Turning Pydantic's validation errors into the domain's ``ValidationError``.

Clients speak camelCase (``modelName``), the models snake_case; the error names the field the
way the client sent it, and the rule that failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, TypeAdapter

from graphql_api.domain import text
from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.domain.values import Hyperparameters, Metrics

M = TypeVar("M", bound=BaseModel)

# Pydantic's error types as rules: the length rules as the services and the text policy name
# them, the others under Pydantic's names (those ValidationRule lists). Any other type is
# ``invalid``; tests/test_errors_enums.py checks which types the inputs can reach.
_RULES = {
    "string_too_short": ValidationRule.min_length,
    "string_too_long": ValidationRule.max_length,
    "string_pattern_mismatch": ValidationRule.string_pattern_mismatch,
    "value_error": ValidationRule.value_error,
    "dict_type": ValidationRule.dict_type,
}

_METRICS: TypeAdapter[dict[str, int | float]] = TypeAdapter(Metrics)
_HYPERPARAMETERS: TypeAdapter[dict[str, Any]] = TypeAdapter(Hyperparameters)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def from_pydantic(error: pydantic.ValidationError, prefix: str = "") -> ValidationError:
    """The first problem, named by its field path and rule (Pydantic's error type, or the
    policy's own rule name when a ``text.PolicyError`` was raised)."""
    first = error.errors(include_url=False)[0]
    path = [
        camel(str(p)) if isinstance(p, str) and i == 0 else str(p)
        for i, p in enumerate(first["loc"])
    ]
    rule = _RULES.get(first["type"], ValidationRule.invalid)
    message = first["msg"].removeprefix("Value error, ")
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, text.PolicyError):
        rule, message = cause.rule, cause.message
        if cause.path:
            path.append(cause.path)
    field = ".".join(filter(None, [prefix, *path])) or prefix or "input"
    return ValidationError(field, message, rule=rule)


def build(model: type[M], **fields: Any) -> M:
    """A new record from client input, with every input rule applied (``text.INPUT_CONTEXT``)
    and its validation failure as a domain error."""
    try:
        return model.model_validate(fields, context=text.INPUT_CONTEXT)
    except pydantic.ValidationError as error:
        raise from_pydantic(error) from None


def metrics(value: Any, field: str = "metrics") -> dict[str, int | float]:
    try:
        return _METRICS.validate_python(value, context=text.INPUT_CONTEXT)
    except pydantic.ValidationError as error:
        raise from_pydantic(error, prefix=field) from None


def hyperparameters(value: Any, field: str = "hyperparameters") -> dict[str, Any]:
    try:
        return _HYPERPARAMETERS.validate_python(value, context=text.INPUT_CONTEXT)
    except pydantic.ValidationError as error:
        raise from_pydantic(error, prefix=field) from None


def checked(check: Callable[[str], str], value: str, field: str) -> str:
    """``check(value)`` (a ``text`` policy) with its failure as a domain error."""
    try:
        return check(value)
    except text.PolicyError as error:
        raise ValidationError(field, error.message, rule=error.rule) from None
