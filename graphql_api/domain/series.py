"""Metric series: per-step points a training job reports, their limits and how a range of a
series is read (from bucket summaries plus the few buckets it must open).

Pure: the storage keeps points in buckets (one document per job x key x step range, see
``storage/mongo/metric_series.py``) and hands this module their summaries; this module decides
which buckets must be opened and assembles what a client sees.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from graphql_api.domain import downsampling, text
from graphql_api.domain.downsampling import MetricSampling, Sample, Summary
from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.domain.values import MAX_INTEGER, check_key

#: Points one ``reportTrainingMetrics`` call may carry.
MAX_POINTS_PER_CALL = 1_000
#: Metric keys one job may hold: its series and its latest-value ``metrics`` together (every
#: series key is also a ``metrics`` key, the latest value).
MAX_KEYS_PER_JOB = 1_000
#: Points one job may store, over all its series (a replaced point counts once).
MAX_POINTS_PER_JOB = 10_000_000
MAX_STEP = MAX_INTEGER
DEFAULT_MAX_POINTS = 500
#: ``maxPoints`` bounds: MIN_MAX needs a few groups, and a chart needs no more than this.
MIN_MAX_POINTS = 10
MAX_MAX_POINTS = 10_000
#: Keys one ``metricSeries`` selection may ask for.
MAX_KEYS_PER_QUERY = 100
#: A range holding at most this many times ``maxPoints`` points is read whole (all its buckets
#: opened) and downsampled point by point; above it, from bucket summaries.
RAW_READ_FACTOR = 10
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MetricPoint(NamedTuple):
    """One reported point, validated. A named tuple, not a frozen dataclass: one is built per
    point of every call, and a frozen dataclass's ``__init__`` (``object.__setattr__`` per
    field) cost about 1 ms per 1,000 points of a call's 10 ms budget (bench/README.md)."""

    key: str
    step: int
    value: float
    #: Milliseconds since the epoch (what BSON keeps of a datetime).
    timestamp_ms: int


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, truncated (what BSON keeps)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _check_key_once(key: str, where: str, known_keys: set[str]) -> None:
    """``key`` follows the metric key rules (ValidationError on ``{where}.key``), checked once
    per call: a batch repeats few keys over many points."""
    if key in known_keys:
        return
    try:
        check_key(key, "metric")
    except text.PolicyError as error:
        raise ValidationError(f"{where}.key", error.message, error.rule) from None
    known_keys.add(key)


def check_points(raw: Sequence[Mapping[str, Any]], now: datetime) -> list[MetricPoint]:
    """Validated points (ValidationError naming ``points[i].field`` and the rule). Within one
    call a later point for the same (key, step) replaces an earlier one, as a later call does."""
    if not raw:
        raise ValidationError("points", "must hold at least one point", ValidationRule.min_length)
    if len(raw) > MAX_POINTS_PER_CALL:
        raise ValidationError(
            "points",
            f"at most {MAX_POINTS_PER_CALL} points per call, got {len(raw)} (send them in "
            "batches; nothing was written)",
            ValidationRule.max_items,
        )
    now_ms = to_ms(now)
    checked: dict[tuple[str, int], MetricPoint] = {}
    known_keys: set[str] = set()
    for index, point in enumerate(raw):
        where = f"points[{index}]"
        key = point["key"]
        _check_key_once(key, where, known_keys)
        step = point["step"]
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValidationError(f"{where}.step", "must be an integer", ValidationRule.number)
        if step < 0:
            raise ValidationError(f"{where}.step", "must not be negative", ValidationRule.min)
        if step > MAX_STEP:
            raise ValidationError(f"{where}.step", "must fit in 64 bits", ValidationRule.int64)
        value = point["value"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"{where}.value", "must be a number", ValidationRule.number)
        value = float(value)
        if not math.isfinite(value):
            raise ValidationError(
                f"{where}.value",
                f"must be a finite number, not {value}",
                ValidationRule.finite_number,
            )
        moment = point.get("timestamp")
        if moment is None:
            ms = now_ms
        else:
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValidationError(
                    f"{where}.timestamp",
                    "must be timezone-aware (e.g. 2026-01-31T12:00:00Z)",
                    ValidationRule.timezone,
                )
            ms = to_ms(moment)
        checked[(key, step)] = MetricPoint(key, step, value, ms)
    return list(checked.values())


def check_series(raw: Sequence[Mapping[str, Any]], now: datetime) -> list[MetricPoint]:
    """Validated points of the columnar form (``series: [{key, steps, values, timestamps}]``),
    under the same rules and limits as ``check_points`` (ValidationError naming
    ``series[i].steps[j]`` and the rule); ``steps``, ``values`` and ``timestamps`` (when
    given) must be of equal length. A later point for the same (key, step), in the same entry
    or a later one, replaces an earlier one."""
    if not raw:
        raise ValidationError("series", "must hold at least one series", ValidationRule.min_length)
    total = 0
    for index, entry in enumerate(raw):
        where = f"series[{index}]"
        steps = entry["steps"]
        for name in ("values", "timestamps"):
            column = entry.get(name)
            if column is not None and len(column) != len(steps):
                raise ValidationError(
                    f"{where}.{name}",
                    f"must hold one item per step: {len(steps)} steps, {len(column)} {name}",
                    ValidationRule.same_length,
                )
        total += len(steps)
    if total == 0:
        raise ValidationError("series", "must hold at least one point", ValidationRule.min_length)
    if total > MAX_POINTS_PER_CALL:
        raise ValidationError(
            "series",
            f"at most {MAX_POINTS_PER_CALL} points per call (all keys together), got {total} "
            "(send them in batches; nothing was written)",
            ValidationRule.max_items,
        )
    now_ms = to_ms(now)
    checked: dict[tuple[str, int], MetricPoint] = {}
    known_keys: set[str] = set()
    for index, entry in enumerate(raw):
        where = f"series[{index}]"
        key = entry["key"]
        _check_key_once(key, where, known_keys)
        steps, values = entry["steps"], entry["values"]
        # Whole columns at a time: one pass per rule instead of a branch per point (the
        # columnar form exists to be cheap per point; bench/README.md "Metric series").
        for position, step in enumerate(steps):
            if type(step) is not int or not 0 <= step <= MAX_STEP:
                _refuse_step(f"{where}.steps[{position}]", step)
        for position, value in enumerate(values):
            if type(value) is float:
                if math.isfinite(value):
                    continue
            # An integer is a number too, if a float can hold it.
            elif type(value) is int and abs(value) <= sys.float_info.max:
                continue
            _refuse_value(f"{where}.values[{position}]", value)
        moments = entry.get("timestamps")
        if moments is None:
            stamps = [now_ms] * len(steps)
        else:
            stamps = []
            for position, moment in enumerate(moments):
                if moment.tzinfo is None or moment.utcoffset() is None:
                    raise ValidationError(
                        f"{where}.timestamps[{position}]",
                        "must be timezone-aware (e.g. 2026-01-31T12:00:00Z)",
                        ValidationRule.timezone,
                    )
                stamps.append(to_ms(moment))
        for step, value, ms in zip(steps, values, stamps, strict=True):
            checked[(key, step)] = MetricPoint(key, step, float(value), ms)
    return list(checked.values())


def _refuse_step(where: str, step: object) -> None:
    if isinstance(step, bool) or not isinstance(step, int):
        raise ValidationError(where, "must be an integer", ValidationRule.number)
    if step < 0:
        raise ValidationError(where, "must not be negative", ValidationRule.min)
    raise ValidationError(where, "must fit in 64 bits", ValidationRule.int64)


def _refuse_value(where: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(where, "must be a number", ValidationRule.number)
    raise ValidationError(
        where, f"must be a finite number, not {value}", ValidationRule.finite_number
    )


@dataclass(frozen=True)
class SeriesRange:
    """``metricSeries`` arguments, checked."""

    keys: tuple[str, ...] | None
    from_step: int
    to_step: int
    max_points: int
    sampling: MetricSampling

    @staticmethod
    def of(
        keys: Sequence[str] | None,
        from_step: int | None,
        to_step: int | None,
        max_points: int,
        sampling: MetricSampling,
    ) -> SeriesRange:
        if keys is not None:
            if len(keys) > MAX_KEYS_PER_QUERY:
                raise ValidationError(
                    "keys",
                    f"at most {MAX_KEYS_PER_QUERY} keys per series selection",
                    ValidationRule.max_items,
                )
            for key in keys:
                try:
                    check_key(key, "metric")
                except text.PolicyError as error:
                    raise ValidationError("keys", error.message, error.rule) from None
            keys = tuple(dict.fromkeys(keys))
        low = 0 if from_step is None else from_step
        high = MAX_STEP if to_step is None else to_step
        for name, step in (("fromStep", low), ("toStep", high)):
            if step < 0:
                raise ValidationError(name, "must not be negative", ValidationRule.min)
        if low > high:
            raise ValidationError("toStep", "must not be below fromStep", ValidationRule.range)
        if max_points < MIN_MAX_POINTS:
            raise ValidationError(
                "maxPoints", f"must be at least {MIN_MAX_POINTS}", ValidationRule.min
            )
        if max_points > MAX_MAX_POINTS:
            raise ValidationError(
                "maxPoints", f"must be at most {MAX_MAX_POINTS}", ValidationRule.max
            )
        return SeriesRange(keys, low, high, max_points, sampling)


@dataclass(frozen=True, slots=True)
class BucketSummary:
    """One stored bucket of a series, as its summary: ``ref`` names it for opening."""

    ref: str
    summary: Summary


@dataclass(frozen=True)
class MetricSeries:
    """A series over a step range, downsampled: what ``TrainingJob.metricSeries`` shows."""

    key: str
    #: Points stored in the range (exact, whatever was sampled).
    total_points: int
    #: Whether ``points`` holds fewer than ``total_points``.
    sampled: bool
    first_step: int | None
    last_step: int | None
    min: float | None
    max: float | None
    last: float | None
    points: list[Sample]


def _inside(summary: Summary, where: SeriesRange) -> bool:
    return where.from_step <= summary.first[0] and summary.last[0] <= where.to_step


def _outside(summary: Summary, where: SeriesRange) -> bool:
    return summary.last[0] < where.from_step or summary.first[0] > where.to_step


def buckets_to_open(buckets: Sequence[BucketSummary], where: SeriesRange) -> list[str]:
    """Which of a series' buckets (ascending) a read of ``where`` must open: those the range
    cuts through, or all of them when the range holds few enough points to read whole."""
    overlapping = [b for b in buckets if not _outside(b.summary, where)]
    if sum(b.summary.count for b in overlapping) <= RAW_READ_FACTOR * where.max_points:
        return [b.ref for b in overlapping]
    return [b.ref for b in overlapping if not _inside(b.summary, where)]


def read_series(
    key: str,
    buckets: Sequence[BucketSummary],
    opened: Mapping[str, Sequence[Sample]],
    where: SeriesRange,
) -> MetricSeries:
    """The series ``key`` over ``where`` from its buckets' summaries (ascending), with the
    buckets ``buckets_to_open`` named opened (their points, ascending)."""
    parts: list[Summary] = []
    whole: list[Sample] | None = []
    for bucket in buckets:
        if _outside(bucket.summary, where):
            continue
        points = opened.get(bucket.ref)
        if points is None:
            parts.append(bucket.summary)
            whole = None
            continue
        in_range = [p for p in points if where.from_step <= p[0] <= where.to_step]
        if in_range:
            parts.append(Summary.of(in_range))
            if whole is not None:
                whole.extend(in_range)
    if not parts:
        return MetricSeries(key, 0, False, None, None, None, None, None, [])
    total = Summary.merge(parts)
    if whole is not None:
        points = downsampling.raw(whole, where.max_points, where.sampling)
    else:
        points = downsampling.summarised(parts, where.max_points, where.sampling)
    return MetricSeries(
        key=key,
        total_points=total.count,
        sampled=len(points) < total.count,
        first_step=total.first[0],
        last_step=total.last[0],
        min=total.min[1],
        max=total.max[1],
        last=total.last[1],
        points=points,
    )
