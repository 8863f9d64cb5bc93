"""The dashboard dialect (core/envelopes.py), through ingest(): status and model_change
snapshots, throughput samples, and both dialects on one stream."""

from __future__ import annotations

import pytest

from opta_exporter.core.state import GIB, LmxState
from tests.unit.core.feeding import NOW, M, apply_ok, envelope, load, loaded_state


# -- the dashboard dialect ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["status", "model_change"])
def test_status_envelope(kind: str) -> None:
    state = LmxState()
    load(state, "a", 1.0)
    apply_ok(state, "model_loaded", {"model_id": "b", "format": "gguf", "memory_gb": 3.0})
    apply_ok(
        state, "model_readiness_changed", {"model_id": "b", "state": "routable", "crash_count": 1}
    )
    apply_ok(
        state,
        "message",
        envelope(
            kind,
            {
                "vram_used_gb": 61.2,
                "vram_total_gb": 512.0,
                "loaded_models": [
                    {
                        "id": "a",
                        "name": "A",
                        "vram_gb": 4.5,
                        "quantization": "4bit",
                        "context_length": 32768,
                        "loaded_at": NOW - 60,
                    },
                    {"id": "c", "name": "C", "loaded_at": NOW - 5},
                ],
                "active_requests": 2,
                "tokens_per_second": 55.5,
                "temperature_celsius": 48.5,
                "uptime_seconds": 5231.4,
            },
        ),
        now=NOW,
    )
    assert state.loaded == {"a": "mlx", "c": "unknown"}
    assert state.model_memory == {"a": 4.5 * GIB}
    assert "b" not in state.readiness
    assert "b" not in state.crashes
    assert state.state_drift == 0.0  # the stream's own model list is not lost data
    assert state.memory_used == 61.2 * GIB
    assert state.memory_total == 512.0 * GIB
    assert state.in_flight == 2.0
    assert state.temperature == 48.5
    assert state.start_time == NOW - 5231.4
    assert state.window.copy() == [55.5]
    assert state.events[kind] == 1.0


def test_status_envelope_without_models_leaves_models_alone() -> None:
    state = loaded_state()
    apply_ok(state, "message", envelope("status", {"active_requests": 0}))
    assert state.loaded == {M: "mlx"}
    assert state.in_flight == 0.0
    assert state.temperature is None


def test_status_envelope_with_empty_model_list_unloads_all() -> None:
    state = loaded_state()
    apply_ok(state, "message", envelope("status", {"loaded_models": []}))
    assert state.loaded == {}
    assert state.readiness == {}
    assert state.state_drift == 0.0


def test_throughput_envelopes_feed_the_window() -> None:
    state = LmxState(window_size=3)
    for i, tps in enumerate((10.0, 50.5, 30.0, 12.0)):
        apply_ok(
            state,
            "message",
            envelope("throughput", {"timestamp": 1718000000000 + i * 20, "tokensPerSecond": tps}),
        )
    assert state.window.copy() == [50.5, 30.0, 12.0]
    assert state.window.latest == 12.0
    assert state.events == {"throughput": 4.0}


def test_both_dialects_on_one_stream() -> None:
    state = LmxState()
    apply_ok(state, "model_loaded", {"model_id": "a", "format": "mlx"})
    apply_ok(state, "message", envelope("throughput", {"tokensPerSecond": 20}))
    apply_ok(state, "request_completed", {"model_id": "a", "tokens_per_second": 30})
    apply_ok(state, "message", envelope("status", {"tokens_per_second": 40}))
    assert state.window.copy() == [20.0, 30.0, 40.0]
    assert state.loaded == {"a": "mlx"}
