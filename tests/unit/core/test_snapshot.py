"""parse_snapshot (core/snapshot.py): /admin/status + /admin/memory bodies -> Snapshot, a field
of the wrong type read as absent."""

from __future__ import annotations

from typing import Any

import pytest

from opta_exporter.core.snapshot import parse_snapshot
from opta_exporter.core.state import Snapshot
from tests.helpers import MEMORY, STATUS


def test_parse_snapshot_reads_both_endpoints() -> None:
    snap = parse_snapshot(STATUS, MEMORY)
    assert snap == Snapshot(
        version="0.1.0",
        uptime_seconds=100.0,
        memory_total_gb=512.0,
        memory_used_gb=61.2,
        memory_available_gb=450.8,
        threshold_percent=90.0,
        in_flight=1.0,
        max_concurrent=4.0,
        models={"a": 4.5, "b": 2.0},
    )


@pytest.mark.parametrize(
    ("status", "memory", "expected"),
    [
        ({}, {}, Snapshot()),
        ({"version": 3, "uptime_seconds": "long", "models": "a"}, {"models": []}, Snapshot()),
        ({"uptime_seconds": float("nan"), "in_flight_requests": -1}, {}, Snapshot()),
        (
            {},
            {
                "models": {
                    "x": {"memory_gb": 1.0, "loaded": True},
                    "y": {"memory_gb": 1.0, "loaded": False},
                }
            },
            Snapshot(models={"x": 1.0}),
        ),
        (
            {"models": ["x", 7, ""]},
            {"models": {"x": {"memory_gb": "big"}}},
            Snapshot(models={"x": None}),
        ),
    ],
)
def test_parse_snapshot_treats_wrong_types_as_absent(
    status: dict[str, Any], memory: dict[str, Any], expected: Snapshot
) -> None:
    assert parse_snapshot(status, memory) == expected
