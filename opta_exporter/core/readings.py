"""Bodies of LMX's polled admin reads -> typed readings, tolerant of LMX's variations.

Pure: the readers (readers/) fetch, this reads. A field of the wrong type is absent,
never zero: a malformed body must not make a figure lie.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GIB = 1024.0**3
HEALTH_STATUSES = ("ok", "degraded")
METAL_KINDS = ("active", "peak", "cache")


def percent(value: object) -> float | None:
    """A 0-100 figure as a 0-1 ratio; anything else (bool, NaN, out of range) is absent."""
    if type(value) is bool or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value / 100.0 if 0 <= value <= 100 else None


def gib_bytes(value: object) -> float | None:
    if type(value) is bool or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value * GIB if value >= 0 else None


@dataclass(frozen=True)
class HealthReading:
    """/admin/health: the one admin read LMX answers while it sheds load."""

    status: str | None = None  # one of HEALTH_STATUSES, else None
    memory_usage_ratio: float | None = None
    metal_bytes: Mapping[str, float] = field(default_factory=dict)  # empty off Apple silicon


def parse_health(body: Mapping[str, Any]) -> HealthReading:
    status = body.get("status")
    metal = body.get("metal")
    metal_bytes: dict[str, float] = {}
    if isinstance(metal, dict):
        for kind in METAL_KINDS:
            value = gib_bytes(metal.get(f"{kind}_memory_gb"))
            if value is not None:
                metal_bytes[kind] = value
    return HealthReading(
        status=status if status in HEALTH_STATUSES else None,
        memory_usage_ratio=percent(body.get("memory_usage_percent")),
        metal_bytes=metal_bytes,
    )
