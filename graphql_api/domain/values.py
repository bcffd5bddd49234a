"""Validated value types shared by the models: UTC datetimes, metrics, hyperparameters, ids.

MongoDB keeps datetimes to the millisecond, forbids ``$``-prefixed and dotted keys in stored
documents (they would read as operators or paths), and JSON has no NaN or infinity. These
types make every value storable and round-trippable before it reaches storage.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictFloat

MAX_KEY_LENGTH = 128
MAX_METRICS = 256
MAX_HYPERPARAMETER_DEPTH = 8
MAX_HYPERPARAMETER_ITEMS = 1_000
MAX_STRING_LENGTH = 4_096
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


def utc_now() -> datetime:
    return to_storage_precision(datetime.now(UTC))


def to_storage_precision(value: datetime) -> datetime:
    """Truncate to milliseconds, the precision BSON keeps, so a value survives a round trip."""
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be timezone-aware (e.g. 2026-01-31T12:00:00Z)")
    return to_storage_precision(value.astimezone(UTC))


def check_key(key: object, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where} keys must be non-empty strings")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{where} key {key[:40]!r}... is longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("$"):
        raise ValueError(f"{where} key {key!r} must not start with '$'")
    if "." in key:
        raise ValueError(f"{where} key {key!r} must not contain '.'")
    if "\x00" in key:
        raise ValueError(f"{where} key {key!r} must not contain a NUL character")
    return key


def _metrics(value: dict[str, float]) -> dict[str, float]:
    if len(value) > MAX_METRICS:
        raise ValueError(f"at most {MAX_METRICS} metrics")
    for key, number in value.items():
        check_key(key, "metric")
        if not math.isfinite(number):
            raise ValueError(f"metric {key!r} must be a finite number, not {number}")
    return value


def _hyperparameters(value: dict[str, Any]) -> dict[str, Any]:
    counter = [0]
    _check_json(value, depth=1, path="hyperparameters", counter=counter)
    return value


def _check_json(value: Any, *, depth: int, path: str, counter: list[int]) -> None:
    counter[0] += 1
    if counter[0] > MAX_HYPERPARAMETER_ITEMS:
        raise ValueError(f"at most {MAX_HYPERPARAMETER_ITEMS} values in all")
    if depth > MAX_HYPERPARAMETER_DEPTH:
        raise ValueError(f"{path}: nested deeper than {MAX_HYPERPARAMETER_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            check_key(key, "hyperparameter")
            _check_json(item, depth=depth + 1, path=f"{path}.{key}", counter=counter)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, depth=depth + 1, path=f"{path}[{index}]", counter=counter)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: must be a finite number, not {value}")
    elif isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise ValueError(f"{path}: strings must be at most {MAX_STRING_LENGTH} characters")
    elif value is not None and not isinstance(value, (bool, int)):
        raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise ValueError(f"{path}: integers must fit in 64 bits")


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Metrics = Annotated[dict[str, StrictFloat], AfterValidator(_metrics)]
Hyperparameters = Annotated[dict[str, Any], AfterValidator(_hyperparameters)]
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
