"""The throughput window: LMX sends tokens/s at 10-50 Hz, scrapes come every 15-60 s.

A fixed-size circular buffer keeps the last N samples so a scrape still sees the peaks
that happened between two scrapes.
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

    def items(self) -> tuple[tuple[str, float], ...]:
        return (
            ("mean", self.mean),
            ("p50", self.p50),
            ("p95", self.p95),
            ("max", self.max),
            ("min", self.min),
        )


def quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted data."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class ThroughputWindow:
    def __init__(self, size: int) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, tokens_per_second: float) -> None:
        self._samples.append(tokens_per_second)

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def latest(self) -> float | None:
        return self._samples[-1] if self._samples else None

    def copy(self) -> list[float]:
        return list(self._samples)

    def clone(self) -> ThroughputWindow:
        twin = ThroughputWindow(self._samples.maxlen or 1)
        twin._samples = self._samples.copy()
        return twin


def window_stats(samples: list[float]) -> WindowStats | None:
    """Statistics at scrape time, not per sample: sorting 300 floats is cheaper than
    keeping order on every 50 Hz insert."""
    if not samples:
        return None
    ordered = sorted(samples)
    return WindowStats(
        mean=math.fsum(ordered) / len(ordered),
        p50=quantile(ordered, 0.5),
        p95=quantile(ordered, 0.95),
        max=ordered[-1],
        min=ordered[0],
    )
