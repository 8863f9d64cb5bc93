"""parse_health (core/readings.py): /admin/health as LMX answers it, and as it should not."""

from __future__ import annotations

from typing import Any

import pytest

from opta_exporter.core.readings import GIB, HealthReading, gib_bytes, parse_health, percent

# /admin/health on a Mac, and off Apple silicon (metal null), as LMX answers
ON_A_MAC = {
    "status": "ok",
    "version": "0.1.0",
    "reason": None,
    "memory_usage_percent": 12.5,
    "metal": {"active_memory_gb": 8.0, "peak_memory_gb": 10.5, "cache_memory_gb": 0.5},
    "helpers": {},
    "models_loaded": 2,
    "in_flight_requests": 0,
}
SHEDDING = {
    "status": "degraded",
    "version": "0.1.0",
    "reason": "Memory at 97.0% — approaching OOM threshold",
    "memory_usage_percent": 97.0,
    "metal": None,
    "helpers": {},
    "models_loaded": 2,
    "in_flight_requests": 0,
}


def test_a_mac_reports_status_usage_and_metal_in_bytes() -> None:
    assert parse_health(ON_A_MAC) == HealthReading(
        status="ok",
        memory_usage_ratio=0.125,
        metal_bytes={"active": 8.0 * GIB, "peak": 10.5 * GIB, "cache": 0.5 * GIB},
    )


def test_no_metal_means_no_metal_figures() -> None:
    assert parse_health(SHEDDING) == HealthReading("degraded", 0.97, {})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, HealthReading()),
        ({"status": "on fire"}, HealthReading()),  # not a status LMX has: no one-hot
        ({"memory_usage_percent": "97"}, HealthReading()),
        ({"memory_usage_percent": True}, HealthReading()),
        ({"memory_usage_percent": float("nan")}, HealthReading()),
        ({"memory_usage_percent": 120}, HealthReading()),
        ({"memory_usage_percent": -1}, HealthReading()),
        ({"memory_usage_percent": 0}, HealthReading(memory_usage_ratio=0.0)),
        ({"metal": []}, HealthReading()),
        ({"metal": {"active_memory_gb": "8"}}, HealthReading()),
        (
            {"metal": {"active_memory_gb": -1, "peak_memory_gb": 2}},
            HealthReading(None, None, {"peak": 2 * GIB}),
        ),
    ],
)
def test_a_wrong_field_is_absent_never_zero(body: dict[str, Any], expected: HealthReading) -> None:
    assert parse_health(body) == expected


def test_units() -> None:
    assert percent(50) == 0.5
    assert percent(100.0) == 1.0
    assert gib_bytes(1) == 1024**3
    assert gib_bytes(float("inf")) is None
