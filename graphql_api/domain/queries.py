"""What a list query asks for: filters, orderings and page requests, independent of storage."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

import orjson

from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.errors import ValidationError, ValidationRule

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DateRange:
    """Inclusive bounds; either may be open."""

    since: datetime | None = None
    until: datetime | None = None


#: Limits of the search conditions of one list filter (docs/input-policy.md): each condition
#: is one more clause the server evaluates per candidate record, so their number is bounded.
MAX_TAG_CONDITIONS = 10
MAX_METRIC_CONDITIONS = 10
MAX_HYPERPARAMETER_CONDITIONS = 10
MAX_NAME_CONTAINS_LENGTH = 200

#: A hyperparameter value ``eq`` compares with: a JSON scalar other than null.
Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class TagCondition:
    """A version carries the tag ``key`` with any of ``values``."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetricCondition:
    """The record has metric ``key`` within the bounds (at least one is set)."""

    key: str
    gt: float | int | None = None
    gte: float | int | None = None
    lt: float | int | None = None
    lte: float | int | None = None


@dataclass(frozen=True, slots=True)
class HyperparameterCondition:
    """The job's hyperparameter at ``path`` (keys from the top object down) equals ``eq``."""

    path: tuple[str, ...]
    eq: Scalar


@dataclass(frozen=True, slots=True)
class MetricOrder:
    """Order by the value of metric ``key``; records without it come after all that have it,
    in either direction (then by id, so ties keep one total order)."""

    key: str
    descending: bool = True


@dataclass(frozen=True, slots=True)
class ModelVersionFilter:
    model_ids: tuple[str, ...] | None = None
    model_names: tuple[str, ...] | None = None
    statuses: tuple[ModelStatus, ...] | None = None
    model_types: tuple[ModelType, ...] | None = None
    created: DateRange | None = None
    deployed: DateRange | None = None
    tags: tuple[TagCondition, ...] = ()
    name_contains: str | None = None
    metrics: tuple[MetricCondition, ...] = ()


@dataclass(frozen=True, slots=True)
class TrainingJobFilter:
    job_ids: tuple[str, ...] | None = None
    model_ids: tuple[str, ...] | None = None
    dataset_ids: tuple[str, ...] | None = None
    statuses: tuple[TrainingStatus, ...] | None = None
    created: DateRange | None = None
    started: DateRange | None = None
    completed: DateRange | None = None
    hyperparameters: tuple[HyperparameterCondition, ...] = ()
    metrics: tuple[MetricCondition, ...] = ()


class ModelVersionOrder(StrEnum):
    CREATED_DATE_DESC = "CREATED_DATE_DESC"
    CREATED_DATE_ASC = "CREATED_DATE_ASC"
    VERSION_DESC = "VERSION_DESC"
    VERSION_ASC = "VERSION_ASC"


class TrainingJobOrder(StrEnum):
    CREATED_DATE_DESC = "CREATED_DATE_DESC"
    CREATED_DATE_ASC = "CREATED_DATE_ASC"


@dataclass(frozen=True, slots=True)
class PageRequest:
    """``first`` items after the position ``after`` (an opaque cursor from an earlier page)."""

    first: int = DEFAULT_PAGE_SIZE
    after: str | None = None

    def __post_init__(self) -> None:
        if self.after == "":
            # Not "no cursor": a client that sends "" has lost its cursor, and would silently
            # get the first page again.
            raise ValidationError(
                "after",
                "is empty: omit it for the first page, or pass a pageInfo.endCursor unchanged",
                rule=ValidationRule.cursor,
            )
        if self.first < 0:
            raise ValidationError("first", "must not be negative", rule=ValidationRule.min)
        if self.first > MAX_PAGE_SIZE:
            raise ValidationError(
                "first",
                f"must be at most {MAX_PAGE_SIZE} (got {self.first})",
                rule=ValidationRule.max,
            )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None

    @property
    def start_cursor(self) -> str | None:
        return self.cursors[0] if self.cursors else None


def encode_cursor(order: str, values: list[object]) -> str:
    """An opaque cursor: the ordering it belongs to and the sort values of its item."""
    raw = orjson.dumps([order, *values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: str, arity: int) -> list[object]:
    """Inverse of ``encode_cursor``; refuses a cursor of another list or ordering, or a forged
    one. ``order`` is ``"<list>:<ordering>"``, so cursors of different lists never match."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise ValidationError(
            "after", "is not a cursor returned by this API", rule=ValidationRule.cursor
        ) from None
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ValidationError(
            "after", "is not a cursor returned by this API", rule=ValidationRule.cursor
        )
    items, _, ordering = order.partition(":")
    their_items = data[0].partition(":")[0]
    if their_items != items:
        raise ValidationError(
            "after", f"is a cursor of another list, not of {items}", rule=ValidationRule.cursor
        )
    if len(data) != arity + 1 or data[0] != order:
        raise ValidationError(
            "after", f"is a cursor for another ordering, not {ordering}", rule=ValidationRule.cursor
        )
    return list(data[1:])
