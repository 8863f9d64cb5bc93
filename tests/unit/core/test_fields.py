"""Field checks (core/fields.py), through ingest(): a field of the wrong type, out of range,
NaN or infinite refuses its whole event as `bad_field`, and nothing else changes."""

from __future__ import annotations

from typing import Any

import pytest

from opta_exporter.core.ingest import ingest
from opta_exporter.core.state import LmxState
from tests.unit.core.feeding import (
    INF,
    M2,
    NAN,
    NOW,
    REPO,
    M,
    assert_monotonic,
    busy_state,
    counters,
    feed,
    observable,
)

# -- bad fields: counted, and nothing else changes ---------------------------------------
BAD_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    # required fields missing
    ("loaded without model_id", "model_loaded", {"format": "mlx", "memory_gb": 4.0}),
    ("unloaded without model_id", "model_unloaded", {"reason": "lru"}),
    ("readiness without state", "model_readiness_changed", {"model_id": M}),
    ("canary without model_id", "model_canary_started", {"backend": "mlx-lm"}),
    ("ttl eviction without model_id", "model_ttl_evicted", {"idle_seconds": 600.0}),
    ("quantize without model_id", "quantize_progress", {"status": "completed", "percent": 100}),
    # wrong types and values
    ("model_id number", "model_loaded", {"model_id": 42, "format": "mlx"}),
    ("model_id empty", "model_loaded", {"model_id": ""}),
    ("model_id list", "model_unloaded", {"model_id": [M], "reason": "manual"}),
    ("memory_gb string", "model_loaded", {"model_id": M2, "memory_gb": "4.6"}),
    ("memory_gb bool", "model_loaded", {"model_id": M2, "memory_gb": True}),
    ("memory_gb negative", "model_loaded", {"model_id": M2, "memory_gb": -0.5}),
    ("duration NaN", "model_loaded", {"model_id": M2, "duration_sec": NAN}),
    ("duration Infinity", "model_loaded", {"model_id": M2, "duration_sec": INF}),
    ("duration -Infinity", "model_loaded", {"model_id": M2, "duration_sec": -INF}),
    ("duration negative", "model_loaded", {"model_id": M2, "duration_sec": -1}),
    ("duration beyond float", "model_loaded", {"model_id": M2, "duration_sec": 10**400}),
    ("canary duration string", "model_canary_passed", {"model_id": M, "duration_sec": "0.8"}),
    ("canary duration NaN", "model_canary_failed", {"model_id": M, "duration_sec": NAN}),
    ("canary duration Infinity", "model_canary_passed", {"model_id": M, "duration_sec": INF}),
    (
        "crash_count string",
        "model_readiness_changed",
        {"model_id": M, "state": "loading", "crash_count": "2"},
    ),
    (
        "crash_count bool",
        "model_readiness_changed",
        {"model_id": M, "state": "loading", "crash_count": True},
    ),
    (
        "crash_count negative",
        "model_readiness_changed",
        {"model_id": M, "state": "loading", "crash_count": -1},
    ),
    ("readiness state unknown", "model_readiness_changed", {"model_id": M, "state": "warming"}),
    ("readiness state number", "model_readiness_changed", {"model_id": M, "state": 3}),
    ("compat outcome missing", "model_compatibility_recorded", {"model_id": M, "backend": "mlx"}),
    ("compat outcome bool", "model_compatibility_recorded", {"backend": "mlx", "outcome": True}),
    ("download duration string", "download_completed", {"repo_id": REPO, "duration_sec": "95"}),
    ("download duration Infinity", "download_completed", {"repo_id": REPO, "duration_sec": INF}),
    ("quantize status number", "quantize_progress", {"model_id": M, "status": 7}),
    ("quantize status missing", "quantize_progress", {"model_id": M, "percent": 5}),
    ("threshold string", "config_reloaded", {"memory_threshold": "85"}),
    ("threshold over 100", "config_reloaded", {"memory_threshold": 185}),
    ("threshold negative", "config_reloaded", {"memory_threshold": -1}),
    ("model_id lone surrogate", "model_loaded", {"model_id": "caf\ud800", "format": "mlx"}),
    ("memory_gb Infinity", "model_loaded", {"model_id": M2, "memory_gb": INF}),
    ("memory_gb beyond float", "model_loaded", {"model_id": M2, "memory_gb": 10**400}),
    ("unload model_id number", "model_unloaded", {"model_id": 7, "reason": "ttl"}),
    ("canary failed duration negative", "model_canary_failed", {"model_id": M, "duration_sec": -2}),
    ("download duration negative", "download_completed", {"repo_id": REPO, "duration_sec": -1}),
    ("download duration NaN", "download_failed", {"repo_id": REPO, "duration_sec": NAN}),
    ("quantize status empty", "quantize_progress", {"model_id": M, "status": ""}),
    ("quantize status list", "quantize_progress", {"model_id": M, "status": ["completed"]}),
    ("threshold bool", "config_reloaded", {"memory_threshold": True}),
    ("threshold NaN", "config_reloaded", {"memory_threshold": NAN}),
]


@pytest.mark.parametrize(
    ("name", "data"), [pytest.param(*case[1:], id=case[0]) for case in BAD_FIELDS]
)
def test_bad_field_changes_nothing_else(name: str, data: dict[str, Any]) -> None:
    state = busy_state()
    before, events, errors = observable(state), dict(state.events), dict(state.event_errors)
    before_counters = counters(state)

    error = feed(state, name, data)

    assert error is not None
    assert error.reason == "bad_field"
    assert observable(state) == before
    assert state.events == {**events, name: events.get(name, 0.0) + 1}
    assert state.event_errors == {**errors, "bad_field": errors["bad_field"] + 1}
    assert_monotonic(before_counters, counters(state))


def test_json_nan_and_infinity_literals_reach_the_field_checks() -> None:
    """Python's json accepts NaN/Infinity: the field check, not the parser, refuses them."""
    state = LmxState()
    for literal in ("NaN", "Infinity", "-Infinity"):
        error = ingest(
            state, "model_loaded", f'{{"model_id": "m", "duration_sec": {literal}}}', NOW
        )
        assert error is not None
        assert error.reason == "bad_field"
    assert state.load_duration.series == {}
    assert state.loaded == {}
