"""The throughput window: tokens/s samples over the last few minutes, kept for a scrape
(statistics) and a live chart (the samples themselves).

A running LMX has no live tokens/s figure; each sample is a rate computed from two reads
of its completion-token counter (core/throughput.py). The window is a span of time, not a
count of samples, so its statistics mean the same at any read interval.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowStats:
    mean: float
    p50: float
    p95: float
    max: float
    min: float
    latest: float

    def items(self) -> tuple[tuple[str, float], ...]:
        return (
            ("mean", self.mean),
            ("p50", self.p50),
            ("p95", self.p95),
            ("max", self.max),
            ("min", self.min),
            ("latest", self.latest),
        )


WINDOW_STATS = ("mean", "p50", "p95", "max", "min", "latest")


def quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted data."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


Sample = tuple[float, float]  # (unix seconds at the read that closed the pair, tokens/s)


class ThroughputWindow:
    """Samples no older than `duration` seconds, oldest first. Bounded by time; a
    `limit` bounds it by count too, whatever the read interval."""

    def __init__(self, duration: float, limit: int = 10_000) -> None:
        self.duration = duration
        self._samples: deque[Sample] = deque(maxlen=limit)

    def add(self, timestamp: float, tokens_per_second: float) -> None:
        self._samples.append((timestamp, tokens_per_second))
        self.prune(timestamp)

    def prune(self, now: float) -> None:
        """Forget samples older than the window; a clock stepped back keeps them."""
        oldest = now - self.duration
        while self._samples and self._samples[0][0] < oldest:
            self._samples.popleft()

    def __len__(self) -> int:
        return len(self._samples)

    def samples(self, now: float) -> list[Sample]:
        """The samples inside the window as of `now` (wall clock), oldest first."""
        oldest = now - self.duration
        return [s for s in self._samples if s[0] >= oldest]

    def clone(self) -> ThroughputWindow:
        twin = ThroughputWindow(self.duration, self._samples.maxlen or 1)
        twin._samples = self._samples.copy()
        return twin


def window_stats(samples: list[Sample]) -> WindowStats | None:
    """Statistics at scrape time: sorting a few hundred floats per scrape is cheap."""
    if not samples:
        return None
    ordered = sorted(rate for _, rate in samples)
    return WindowStats(
        mean=math.fsum(ordered) / len(ordered),
        p50=quantile(ordered, 0.5),
        p95=quantile(ordered, 0.95),
        max=ordered[-1],
        min=ordered[0],
        latest=samples[-1][1],
    )
