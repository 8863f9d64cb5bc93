"""The one fake clock: wall and monotonic time the test sets, for anything handed a Clock
(opta_exporter/core/clock.py)."""

from __future__ import annotations

WALL = 1_700_000_000.0
MONO = 500.0


class FakeClock:
    def __init__(self, wall: float = WALL, mono: float = MONO) -> None:
        self.wall = wall
        self.mono = mono

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds
