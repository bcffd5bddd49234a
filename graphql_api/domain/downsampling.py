"""Downsampling a metric series to at most ``max_points`` points, without hiding spikes.

Pure functions over samples ``(step, value, timestamp_ms)`` in ascending step order. Two inputs:

* raw points (a short series, or a range read whole): ``raw``;
* bucket summaries (a long series: each stored bucket's count, first, last, min and max,
  precomputed at write time, so a million points are read as about a thousand summaries):
  ``summarised``.

Every output point is a stored point (a downsampled curve never invents a value), in
ascending step order, and no more than ``max_points`` of them.

MIN_MAX splits the series into ``max_points // 2`` groups (equal numbers of points for raw
input; equal numbers of consecutive buckets for summaries) and keeps each group's minimum and
maximum: a spike survives however far the series is reduced. LAST keeps each of
``max_points`` groups' last point (what a "smoothed to the end of the interval" chart shows).
LTTB (largest triangle three buckets, Steinarsson 2013) keeps the points that preserve the
curve's visual shape; over summaries it chooses among each bucket's first, min, max and last.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

#: (step, value, timestamp in milliseconds since the epoch).
Sample = tuple[int, float, int]


class MetricSampling(StrEnum):
    MIN_MAX = "MIN_MAX"
    LTTB = "LTTB"
    LAST = "LAST"


@dataclass(frozen=True, slots=True)
class Summary:
    """What a group of consecutive points is reduced to: enough for every sampling method and
    for the series' own min, max and last."""

    count: int
    first: Sample
    last: Sample
    #: The lowest value (the first such point on a tie), the highest likewise.
    min: Sample
    max: Sample

    @staticmethod
    def of(samples: Sequence[Sample]) -> Summary:
        """The summary of ``samples`` (non-empty, ascending steps)."""
        low = high = samples[0]
        for sample in samples:
            if sample[1] < low[1]:
                low = sample
            elif sample[1] > high[1]:
                high = sample
        return Summary(len(samples), samples[0], samples[-1], low, high)

    @staticmethod
    def merge(parts: Sequence[Summary]) -> Summary:
        """The summary of consecutive groups (non-empty, in step order)."""
        low = min((p.min for p in parts), key=lambda s: (s[1], s[0]))
        high = max((p.max for p in parts), key=lambda s: (s[1], -s[0]))
        return Summary(sum(p.count for p in parts), parts[0].first, parts[-1].last, low, high)


def chunks(length: int, groups: int) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges splitting ``length`` items into at most ``groups`` runs of
    nearly equal size (the first ones one longer), in order, covering every item."""
    groups = max(1, min(groups, length))
    size, extra = divmod(length, groups)
    ranges = []
    start = 0
    for index in range(groups):
        end = start + size + (1 if index < extra else 0)
        if end > start:
            ranges.append((start, end))
        start = end
    return ranges


def _in_order(samples: Iterable[Sample]) -> list[Sample]:
    """Distinct samples (one point may be both a group's min and its first), by step."""
    return sorted({s[0]: s for s in samples}.values())


def raw(samples: Sequence[Sample], max_points: int, sampling: MetricSampling) -> list[Sample]:
    """``samples`` reduced to at most ``max_points`` (all of them when they fit)."""
    if len(samples) <= max_points:
        return list(samples)
    if sampling is MetricSampling.LTTB:
        return lttb(samples, max_points)
    if sampling is MetricSampling.LAST:
        return [samples[end - 1] for _, end in chunks(len(samples), max_points)]
    kept: list[Sample] = []
    for start, end in chunks(len(samples), max_points // 2):
        summary = Summary.of(samples[start:end])
        kept.extend(_in_order((summary.min, summary.max)))
    return kept


def summarised(parts: Sequence[Summary], max_points: int, sampling: MetricSampling) -> list[Sample]:
    """A series given as consecutive summaries, reduced to at most ``max_points``: MIN_MAX and
    LAST group whole summaries (so each group's extremes are exact), LTTB chooses among each
    summary's first, min, max and last."""
    if sampling is MetricSampling.LTTB:
        candidates = _in_order(s for p in parts for s in (p.first, p.min, p.max, p.last))
        return candidates if len(candidates) <= max_points else lttb(candidates, max_points)
    groups = max_points if sampling is MetricSampling.LAST else max_points // 2
    kept: list[Sample] = []
    for start, end in chunks(len(parts), groups):
        merged = Summary.merge(parts[start:end])
        if sampling is MetricSampling.LAST:
            kept.append(merged.last)
        else:
            kept.extend(_in_order((merged.min, merged.max)))
    return kept


def lttb(samples: Sequence[Sample], max_points: int) -> list[Sample]:
    """Largest-triangle-three-buckets: the first and last point, and from each of
    ``max_points - 2`` buckets between them the point forming the largest triangle with the
    point kept before it and the average of the next bucket."""
    count = len(samples)
    if count <= max_points or max_points < 3:
        return list(samples[:max_points]) if max_points < 3 else list(samples)
    kept = [samples[0]]
    every = (count - 2) / (max_points - 2)
    previous = samples[0]
    for index in range(max_points - 2):
        start = int(index * every) + 1
        end = int((index + 1) * every) + 1
        next_start, next_end = end, min(int((index + 2) * every) + 1, count)
        if next_start >= next_end:
            next_start, next_end = count - 1, count
        span = next_end - next_start
        average_x = sum(s[0] for s in samples[next_start:next_end]) / span
        average_y = sum(s[1] for s in samples[next_start:next_end]) / span
        best, best_area = samples[start], -1.0
        px, py = previous[0], previous[1]
        for sample in samples[start:end]:
            area = abs((px - average_x) * (sample[1] - py) - (px - sample[0]) * (average_y - py))
            if area > best_area:
                best, best_area = sample, area
        kept.append(best)
        previous = best
    kept.append(samples[-1])
    return kept
