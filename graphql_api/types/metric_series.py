"""GraphQL types of metric series: the points a job reports and the curves read back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, NewType

import strawberry
from strawberry.types.arguments import InputContext
from strawberry.types.base import get_object_definition

from graphql_api.context import Info
from graphql_api.domain import series
from graphql_api.domain.downsampling import MetricSampling, Sample
from graphql_api.live.metric_feed import MetricUpdate

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _parse_int64(value: object) -> int:
    # JSON integers only: a float (even 1.0), a bool or a string is not a step.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Int64 cannot represent a non-integer value: {value!r}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"Int64 cannot represent a value outside 64 bits: {value!r}")
    return value


#: Steps: a signed 64-bit integer (GraphQL's Int stops at 32 bits). The schema maps it to the
#: scalar below (``StrawberryConfig.scalar_map``, graphql_api/schema.py).
Int64 = NewType("Int64", int)
INT64_SCALAR = strawberry.scalar(
    name="Int64",
    description="A signed 64-bit integer, as a JSON number (GraphQL's Int stops at 32 bits). "
    "JavaScript's Number keeps integers exactly only up to 2^53: parse it as a BigInt past that.",
    serialize=int,
    parse_value=_parse_int64,
)

strawberry.enum(
    MetricSampling,
    description="How a series longer than maxPoints is reduced (docs/metrics.md).",
)


@strawberry.input(description="One point of a metric series.")
class MetricPointInput:
    key: str = strawberry.field(
        description="Metric name, as a `metrics` key: 1-128 visible characters, no '.', not "
        "starting with '$'."
    )
    value: float = strawberry.field(description="A finite number.")
    step: Int64 = strawberry.field(
        description="Training step: a non-negative 64-bit integer. A point for a (key, step) "
        "already stored replaces it, so a retried call never duplicates."
    )
    timestamp: datetime | None = strawberry.field(
        default=None,
        description="When it was measured (timezone-aware; kept to the millisecond); the "
        "server's time of receipt when omitted.",
    )


def _as_coerced(cls: type, value: Mapping[str, Any], context: InputContext) -> Mapping[str, Any]:
    """A point arrives as graphql-core coerced it (``key``, ``value``, ``step``, ``timestamp``,
    already Python values), unconverted: Strawberry's per-field conversion of 1,000 input objects
    cost more than storing them (measured, bench/metrics.py), and the service checks every
    field anyway (``domain/series.check_points``)."""
    return value


get_object_definition(MetricPointInput, strict=True).from_input = _as_coerced


@strawberry.input(
    description="Points of one metric, as columns: the i-th step, value and timestamp make a "
    "point. The faster form of reportTrainingMetrics: lists of numbers cost the server far "
    "less to read than lists of objects (docs/metrics.md)."
)
class MetricSeriesInput:
    key: str = strawberry.field(
        description="Metric name, as a `metrics` key: 1-128 visible characters, no '.', not "
        "starting with '$'."
    )
    steps: list[Int64] = strawberry.field(
        description="Training steps: non-negative 64-bit integers. A point for a (key, step) "
        "already stored replaces it, so a retried call never duplicates."
    )
    values: list[float] = strawberry.field(
        description="Finite numbers, one per step (same length as steps)."
    )
    timestamps: list[datetime] | None = strawberry.field(
        default=None,
        description="When each was measured (timezone-aware; kept to the millisecond), one per "
        "step; the server's time of receipt for all when omitted.",
    )


def _series_as_coerced(
    cls: type, value: Mapping[str, Any], context: InputContext
) -> Mapping[str, Any]:
    """As ``MetricPointInput``: the coerced mapping goes to the service, which checks it."""
    return value


get_object_definition(MetricSeriesInput, strict=True).from_input = _series_as_coerced


@strawberry.type(name="MetricPoint", description="One point of a metric series.")
class MetricPointType:
    step: Int64
    value: float
    timestamp: datetime

    @staticmethod
    def of(sample: Sample) -> MetricPointType:
        return MetricPointType(
            step=Int64(sample[0]), value=sample[1], timestamp=series.from_ms(sample[2])
        )


@strawberry.type(
    name="MetricSeries",
    description="One metric of a job over a step range, downsampled to at most maxPoints. "
    "totalPoints and sampled say when points were left out: never a silent cut.",
)
class MetricSeriesType:
    key: str
    total_points: int = strawberry.field(description="Points stored in the range (exact).")
    sampled: bool = strawberry.field(
        description="True when `points` holds fewer than `totalPoints` (downsampled)."
    )
    first_step: Int64 | None
    last_step: Int64 | None
    min: float | None = strawberry.field(description="Lowest value in the range (exact).")
    max: float | None = strawberry.field(description="Highest value in the range (exact).")
    last: float | None = strawberry.field(description="Value at the range's last step.")
    points: list[MetricPointType] = strawberry.field(
        description="The points, ascending by step: all of them, or a downsampled subset of "
        "stored points (see sampling)."
    )

    @staticmethod
    def of(found: series.MetricSeries) -> MetricSeriesType:
        return MetricSeriesType(
            key=found.key,
            total_points=found.total_points,
            sampled=found.sampled,
            first_step=None if found.first_step is None else Int64(found.first_step),
            last_step=None if found.last_step is None else Int64(found.last_step),
            min=found.min,
            max=found.max,
            last=found.last,
            points=[MetricPointType.of(s) for s in found.points],
        )


class SeriesArguments:
    """``TrainingJob.metricSeries``'s arguments, described once."""

    Keys = Annotated[
        list[str] | None,
        strawberry.argument(
            description="These keys, in this order (at most 100); every key with "
            "points in the range, sorted, when omitted."
        ),
    ]
    FromStep = Annotated[
        Int64 | None,
        strawberry.argument(description="First step of the range (inclusive); 0 when omitted."),
    ]
    ToStep = Annotated[
        Int64 | None,
        strawberry.argument(
            description="Last step of the range (inclusive); the end when omitted."
        ),
    ]
    MaxPoints = Annotated[
        int,
        strawberry.argument(description="At most this many points per series (10 to 10,000)."),
    ]
    Sampling = Annotated[
        MetricSampling,
        strawberry.argument(
            description="How a longer series is reduced: MIN_MAX keeps every "
            "group's lowest and highest point (no spike is lost), LTTB the visual shape, LAST "
            "each group's last point."
        ),
    ]


async def metric_keys_of(info: Info, job_id: str) -> list[str]:
    return await info.context.loaders.series.keys.load(job_id)


async def metric_series_of(
    info: Info,
    job_id: str,
    keys: list[str] | None,
    from_step: int | None,
    to_step: int | None,
    max_points: int,
    sampling: MetricSampling,
) -> list[MetricSeriesType]:
    where = series.SeriesRange.of(keys, from_step, to_step, max_points, sampling)
    loaders = info.context.loaders.series
    found = await loaders.series(where).load(job_id)
    loaders.charge(found)
    return [MetricSeriesType.of(s) for s in found]


@strawberry.type(name="TrainingMetricPoint", description="A point of a job's metric series.")
class TrainingMetricPointType:
    job_id: strawberry.ID
    key: str
    step: Int64
    value: float
    timestamp: datetime


@strawberry.type(
    name="TrainingMetricUpdate",
    description="New points of the subscribed jobs' series: every point written since the "
    "previous message (at most two messages a second).",
)
class TrainingMetricUpdateType:
    cursor: str = strawberry.field(
        description="Pass as `after` to resume right after this message (on any instance), "
        "with no gap and no duplicate."
    )
    points: list[TrainingMetricPointType] = strawberry.field(
        description="Ordered by job, then write, key and step. A point sent again for a "
        "delivered (key, step) comes again with its new value."
    )
    ended_job_ids: list[strawberry.ID] = strawberry.field(
        description="Jobs that reached a final status, every point delivered; the "
        "subscription ends when all have."
    )

    @staticmethod
    def of(update: MetricUpdate) -> TrainingMetricUpdateType:
        return TrainingMetricUpdateType(
            cursor=update.cursor,
            points=[
                TrainingMetricPointType(
                    job_id=strawberry.ID(p.job_id),
                    key=p.key,
                    step=Int64(p.sample[0]),
                    value=p.sample[1],
                    timestamp=series.from_ms(p.sample[2]),
                )
                for p in update.points
            ],
            ended_job_ids=[strawberry.ID(job) for job in update.ended],
        )
