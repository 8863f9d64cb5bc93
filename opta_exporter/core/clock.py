"""The clock every part of the exporter is handed, so tests choose the time.

Wall time is what the metrics report; monotonic time judges ages and staleness (a wall
clock that steps must not make a stream look stale or fresh).
"""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def time(self) -> float: ...
    def monotonic(self) -> float: ...
