"""Histogram families kept as plain bucket counts, so the pure core needs no client lib.

`bisect` finds the bucket in O(log n) on the per-event path; cumulative counts are only
built at scrape time.

A scrape's copy shares the series instead of copying them (copy on write): `copy()`
gives the family a new generation, and a series from an older generation is cloned on
its next observation. So a series a copy holds never changes, a copy costs a dict, and
a series that is the same object in two copies has the same numbers (exposition.py
keeps its text).
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from dataclasses import dataclass, field

_generations = itertools.count()

Labels = tuple[str, ...]


def le_values(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The `le` label values as the client library writes them, `+Inf` last."""
    return (*(repr(float(b)) for b in bounds), "+Inf")


@dataclass
class Series:
    counts: list[int]
    total: float = 0.0
    generation: int = field(default=-1, compare=False)  # the family's that may write it

    def copy(self, generation: int) -> Series:
        return Series(list(self.counts), self.total, generation)

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
    generation: int = field(default_factory=lambda: next(_generations), compare=False)

    def observe(self, labels: Labels, value: float) -> None:
        """`le` is inclusive: a value equal to a bound lands in that bound's bucket."""
        series = self.series.get(labels)
        if series is None:
            series = Series([0] * (len(self.bounds) + 1), generation=self.generation)
            self.series[labels] = series
        elif series.generation != self.generation:  # a copy holds it: write a clone
            series = self.series[labels] = series.copy(self.generation)
        series.counts[bisect_left(self.bounds, value)] += 1
        series.total += value

    def copy(self) -> HistogramFamily:
        """Shares every series; from now on neither family writes one it holds."""
        self.generation = next(_generations)
        return HistogramFamily(self.bounds, dict(self.series), next(_generations))
