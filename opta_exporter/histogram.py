"""Histogram families kept as plain bucket counts, so the pure core needs no client lib.

`bisect` finds the bucket in O(log n) on the per-event path; cumulative counts are only
built at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

Labels = tuple[str, ...]


def le_values(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The `le` label values as the client library writes them, `+Inf` last."""
    return (*(repr(float(b)) for b in bounds), "+Inf")


@dataclass
class Series:
    counts: list[int]
    total: float = 0.0

    def copy(self) -> Series:
        return Series(list(self.counts), self.total)

    def cumulative(self, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip(le_values(bounds), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


@dataclass
class HistogramFamily:
    bounds: tuple[float, ...]
    series: dict[Labels, Series] = field(default_factory=dict)

    def observe(self, labels: Labels, value: float) -> None:
        """`le` is inclusive: a value equal to a bound lands in that bound's bucket."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = Series([0] * (len(self.bounds) + 1))
        series.counts[bisect_left(self.bounds, value)] += 1
        series.total += value

    def copy(self) -> HistogramFamily:
        return HistogramFamily(self.bounds, {k: s.copy() for k, s in self.series.items()})
