"""Validated value types shared by the models: UTC datetimes, metrics, hyperparameters, ids.

MongoDB keeps datetimes to the millisecond, forbids ``$``-prefixed and dotted keys in stored
documents (they would read as operators or paths), and JSON has no NaN or infinity. These
types make every value storable and round-trippable before it reaches storage.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator, ValidationInfo

from graphql_api.domain import text
from graphql_api.domain.errors import ValidationRule

MAX_KEY_LENGTH = text.MAX_KEY_LENGTH
MAX_METRICS = 256
#: Containers nested inside each other: the hyperparameters object itself is level 1.
MAX_HYPERPARAMETER_DEPTH = 8
MAX_HYPERPARAMETER_ITEMS = 1_000
MAX_STRING_LENGTH = 4_096
#: Checked by pydantic-core's Rust regex engine, where ``$`` matches only at the very end
#: (unlike Python's ``re``, where it also matches before a trailing newline).
ID_PATTERN = rf"^{text.ID_REGEX}$"
#: Numbers are stored as BSON int64 or double.
MAX_INTEGER = 2**63 - 1


def utc_now() -> datetime:
    return to_storage_precision(datetime.now(UTC))


def to_storage_precision(value: datetime) -> datetime:
    """Truncate to milliseconds, the precision BSON keeps, so a value survives a round trip."""
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be timezone-aware (e.g. 2026-01-31T12:00:00Z)")
    return to_storage_precision(value.astimezone(UTC))


def check_key(key: object, where: str, *, new_input: bool = True) -> str:
    if not isinstance(key, str):
        raise text.PolicyError(f"{where} keys must be non-empty strings", ValidationRule.min_length)
    return text.check_key(key, where, new_input=new_input)


def _metric_value(value: object) -> int | float:
    """A metric keeps its JSON type: an integer stays an integer (``epoch: 4`` reads back 4), a
    number with a fraction or exponent stays a float (``4.0`` reads back 4.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise text.PolicyError(
            f"must be a valid number (an integer or a float), not {type(value).__name__}",
            ValidationRule.number,
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise text.PolicyError(
            f"must be a finite number, not {value}", ValidationRule.finite_number
        )
    if isinstance(value, int) and abs(value) > MAX_INTEGER:
        raise text.PolicyError("integers must fit in 64 bits", ValidationRule.int64)
    return value


def _metrics(value: dict[str, int | float], info: ValidationInfo) -> dict[str, int | float]:
    if len(value) > MAX_METRICS:
        raise text.PolicyError(f"at most {MAX_METRICS} metrics", ValidationRule.max_items)
    new_input = text.is_new_input(info)
    for key in value:
        check_key(key, "metric", new_input=new_input)
    return value


def _hyperparameters(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    _check_json(value, depth=1, path="", counter=[0], new_input=text.is_new_input(info))
    return value


def _check_json(value: Any, *, depth: int, path: str, counter: list[int], new_input: bool) -> None:
    counter[0] += 1
    if counter[0] > MAX_HYPERPARAMETER_ITEMS:
        raise text.PolicyError(
            f"at most {MAX_HYPERPARAMETER_ITEMS} values in all", ValidationRule.max_items
        )
    if isinstance(value, dict | list) and depth > MAX_HYPERPARAMETER_DEPTH:
        raise text.PolicyError(
            f"objects and arrays nest at most {MAX_HYPERPARAMETER_DEPTH} levels deep "
            "(the hyperparameters object is level 1)",
            ValidationRule.max_depth,
            path,
        )
    if isinstance(value, dict):
        for key, item in value.items():
            check_key(key, "hyperparameter", new_input=new_input)
            item_path = f"{path}.{key}" if path else key
            _check_json(item, depth=depth + 1, path=item_path, counter=counter, new_input=new_input)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(
                item, depth=depth + 1, path=f"{path}[{index}]", counter=counter, new_input=new_input
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise text.PolicyError(
                f"must be a finite number, not {value}", ValidationRule.finite_number, path
            )
    elif isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise text.PolicyError(
                f"strings must be at most {MAX_STRING_LENGTH} characters",
                ValidationRule.max_length,
                path,
            )
    elif value is not None and not isinstance(value, (bool, int)):
        raise text.PolicyError(
            f"{type(value).__name__} is not a JSON value", ValidationRule.json, path
        )
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
        raise text.PolicyError("integers must fit in 64 bits", ValidationRule.int64, path)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
MetricValue = Annotated[int | float, PlainValidator(_metric_value)]
Metrics = Annotated[dict[str, MetricValue], AfterValidator(_metrics)]
Hyperparameters = Annotated[dict[str, Any], AfterValidator(_hyperparameters)]
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
#: The queue of a job created without one (claimTrainingJob, docs/workers.md).
DEFAULT_QUEUE = "default"
Name = Annotated[
    str,
    Field(min_length=1, max_length=text.MAX_NAME_LENGTH),
    AfterValidator(text.on_input(text.check_name)),
]
# No min_length here: what was stored before the policy (an empty logsUrl was accepted at
# creation) must keep loading; new input is checked by the policy, which refuses empty values.
FreeText = Annotated[
    str,
    Field(max_length=text.MAX_TEXT_LENGTH),
    AfterValidator(text.on_input(text.check_text)),
]
Url = Annotated[
    str,
    Field(max_length=text.MAX_URL_LENGTH),
    AfterValidator(text.on_input(text.check_url)),
]
