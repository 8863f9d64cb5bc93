"""ingest() and LmxState: every LMX event type, both dialects, bad input, the caps and
reconciliation against snapshots -- through the public seams only."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opta_exporter.core.events import EventError
from opta_exporter.core.histogram import HistogramFamily
from opta_exporter.core.ingest import ingest
from opta_exporter.core.state import LmxState, Snapshot
from opta_exporter.core.window import ThroughputWindow
from tests.helpers import FIXTURES, LOAD_SEQUENCE, example_snapshot, read_sse

GIB = 1024**3
NOW = 1_718_000_000.0
M = "mlx-community/Qwen3-8B-4bit"
M2 = "/Volumes/models/llama-3.1-8b-instruct-q4_k_m.gguf"
REPO = "mlx-community/Qwen3-8B-4bit"


# -- helpers -----------------------------------------------------------------------------
LOAD_UNLOAD = read_sse(FIXTURES / "lmx_load_unload.sse")
LOAD = LOAD_UNLOAD[:-1]
UNLOAD = LOAD_UNLOAD[-1]


def feed(state: LmxState, name: str, data: object, now: float = NOW) -> EventError | None:
    text = data if isinstance(data, str) else json.dumps(data)
    return ingest(state, name, text, now)


def apply_ok(state: LmxState, name: str, data: object, now: float = NOW) -> None:
    error = feed(state, name, data, now)
    assert error is None, error


def envelope(kind: object, data: object) -> dict[str, object]:
    return {"type": kind, "data": data}


# Counted separately (events, event_errors) or pure bookkeeping (ordering marks, label
# sets, the cap itself, whose refusals show in series_dropped()).
BOOKKEEPING = frozenset(
    {"events", "event_errors", "seq", "synced", "model_seq", "open_labels", "cap", "max_models"}
)
# Counter tables that start with every label at zero, so a zero is "not yet", not news.
ZERO_INITIALISED = frozenset({"unloads", "canaries", "downloads", "quantize_jobs"})


def observable(s: LmxState) -> dict[str, object]:
    """Everything a scrape could show, except the event and error counters."""
    out: dict[str, object] = {}
    for name, value in vars(s).items():
        if name in BOOKKEEPING:
            continue
        if isinstance(value, HistogramFamily):
            out[name] = {k: (sum(v.counts), v.total) for k, v in value.series.items()}
        elif isinstance(value, ThroughputWindow):
            out[name] = value.copy()
        elif isinstance(value, dict):
            out[name] = {
                k: v for k, v in value.items() if not (name in ZERO_INITIALISED and v == 0)
            }
        else:
            out[name] = value
    out["series_dropped"] = s.series_dropped()
    return out


def changes(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in after.items() if before.get(k) != v}


COUNTER_TABLES = (
    "events",
    "event_errors",
    "loads",
    "unloads",
    "canaries",
    "compat",
    "downloads",
    "quantize_jobs",
    "requests",
    "prompt_tokens",
    "completion_tokens",
)
SCALAR_COUNTERS = ("config_reloads", "memory_warnings", "state_drift")
HISTOGRAMS = ("load_duration", "canary_duration", "download_duration", "request_duration", "ttft")


def counters(s: LmxState) -> dict[str, float]:
    """Every counter sample, histogram buckets (cumulative), counts and sums included."""
    out: dict[str, float] = {}
    for name in COUNTER_TABLES:
        table: dict[Any, float] = getattr(s, name)
        for key, value in table.items():
            out[f"{name}{key!r}"] = value
    for name in SCALAR_COUNTERS:
        out[name] = getattr(s, name)
    for metric, value in s.series_dropped().items():
        out[f"series_dropped{metric}"] = value
    for name in HISTOGRAMS:
        family: HistogramFamily = getattr(s, name)
        for labels, series in family.series.items():
            running = 0
            for i, count in enumerate(series.counts):
                running += count
                out[f"{name}{labels!r}le{i}"] = running
            out[f"{name}{labels!r}sum"] = series.total
    return out


def assert_monotonic(before: dict[str, float], after: dict[str, float]) -> None:
    for key, value in before.items():
        assert key in after, f"counter {key} vanished"
        assert after[key] >= value, f"counter {key} went from {value} to {after[key]}"


def loaded_state(max_models: int = 100) -> LmxState:
    state = LmxState(max_models=max_models)
    for name, data in LOAD:
        apply_ok(state, name, data)
    return state


def busy_state() -> LmxState:
    """A state with something in every table, so 'nothing changed' means something."""
    state = loaded_state()
    apply_ok(
        state,
        "model_loaded",
        {"model_id": M2, "format": "gguf", "memory_gb": 8.0, "duration_sec": 12.0},
    )
    apply_ok(
        state,
        "model_readiness_changed",
        {"model_id": M2, "state": "quarantined", "crash_count": 3},
    )
    apply_ok(
        state, "download_progress", {"download_id": "d1", "repo_id": REPO, "progress_percent": 5}
    )
    apply_ok(state, "quantize_progress", {"model_id": M, "status": "quantizing", "percent": 20})
    apply_ok(state, "config_reloaded", {"memory_threshold": 85})
    apply_ok(
        state,
        "request_completed",
        {
            "model_id": M,
            "latency_sec": 0.5,
            "ttft_sec": 0.1,
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "tokens_per_second": 40.0,
        },
    )
    apply_ok(state, "message", envelope("throughput", {"tokensPerSecond": 33.0}))
    apply_ok(
        state,
        "message",
        envelope(
            "status",
            {
                "vram_used_gb": 20.0,
                "vram_total_gb": 512.0,
                "active_requests": 1,
                "temperature_celsius": 41.0,
            },
        ),
    )
    state.reconcile(
        Snapshot(
            version="0.1.0",
            uptime_seconds=100.0,
            memory_available_gb=400.0,
            max_concurrent=4,
            models={M: 4.62, M2: 8.0},
        ),
        NOW,
        state.seq,
    )
    return state


# -- the real load sequence and the unload ---------------------------------------------
def test_fixture_is_the_protocol_sequence() -> None:
    assert [name for name, _ in LOAD_UNLOAD] == [*LOAD_SEQUENCE, "model_unloaded"]
    assert '"memory_gb": 0,' in LOAD[3][1]  # the integer 0 a running LMX sends
    assert '"ts": ' in LOAD[6][1]
    assert '"metadata": ' in LOAD[6][1]


def test_real_load_sequence() -> None:
    state = LmxState()
    readiness_seen = []
    for name, data in LOAD:
        before = counters(state)
        assert ingest(state, name, data, NOW) is None
        assert_monotonic(before, counters(state))
        if name == "model_readiness_changed":
            readiness_seen.append(state.readiness[M])
    assert readiness_seen == ["admitted", "loading", "canary_pending", "routable"]
    assert state.loaded == {M: "mlx"}
    assert state.readiness == {M: "routable"}
    assert state.crashes == {M: 0.0}
    assert state.model_memory.get(M, 0.0) == 0.0  # memory_gb 0 is a number, not bad input
    assert state.loads == {(M, "mlx"): 1.0}
    assert observable(state)["load_duration"] == {("mlx",): (1, 2.41)}
    assert state.canaries == {"passed": 1.0, "failed": 0.0}
    assert observable(state)["canary_duration"] == {("passed",): (1, 0.84)}
    assert state.compat == {("mlx", "pass"): 1.0}
    assert state.events == {
        "model_readiness_changed": 4.0,
        "model_loaded": 1.0,
        "model_canary_started": 1.0,
        "model_compatibility_recorded": 1.0,
        "model_canary_passed": 1.0,
    }
    assert set(state.event_errors.values()) == {0.0}


def test_unload_alone_removes_the_models_series() -> None:
    state = loaded_state()
    apply_ok(state, "model_loaded", {"model_id": M, "format": "mlx", "memory_gb": 4.62})
    apply_ok(
        state, "model_readiness_changed", {"model_id": M, "state": "routable", "crash_count": 1}
    )
    apply_ok(state, "model_loaded", {"model_id": M2, "format": "gguf", "memory_gb": 8})
    apply_ok(
        state, "model_readiness_changed", {"model_id": M2, "state": "routable", "crash_count": 0}
    )
    for table in (state.loaded, state.model_memory, state.readiness, state.crashes):
        assert M in table
    before = counters(state)

    name, data = UNLOAD
    assert ingest(state, name, data, NOW) is None

    for table in (state.loaded, state.model_memory, state.readiness, state.crashes):
        assert M not in table
    assert state.loaded == {M2: "gguf"}
    assert state.model_memory == {M2: 8 * GIB}
    assert state.readiness == {M2: "routable"}
    assert state.crashes == {M2: 0.0}
    assert state.unloads["manual"] == 1.0
    assert state.loads[(M, "mlx")] == 2.0  # counters keep their series
    assert_monotonic(before, counters(state))


def test_unload_of_an_unknown_model_is_harmless() -> None:
    state = loaded_state()
    before = observable(state)
    apply_ok(state, "model_unloaded", {"model_id": "never-loaded", "reason": "lru"})
    assert changes(before, observable(state)) == {"unloads": {"lru": 1.0}}


# -- every event type: what it changes, and nothing else ---------------------------------
EVENT_CASES: list[tuple[str, str, dict[str, Any], dict[str, object]]] = [
    (
        "model_loaded",
        "model_loaded",
        {"model_id": M, "format": "mlx", "memory_gb": 4.62, "duration_sec": 2.41},
        {
            "loaded": {M: "mlx"},
            "model_memory": {M: 4.62 * GIB},
            "loads": {(M, "mlx"): 1.0},
            "load_duration": {("mlx",): (1, 2.41)},
        },
    ),
    (
        "model_loaded minimal",
        "model_loaded",
        {"model_id": M},
        {"loaded": {M: "unknown"}, "loads": {(M, "unknown"): 1.0}},
    ),
    (
        "model_unloaded",
        "model_unloaded",
        {"model_id": M, "memory_freed_gb": 4.62, "reason": "ttl"},
        {"unloads": {"ttl": 1.0}},
    ),
    ("model_unloaded minimal", "model_unloaded", {"model_id": M}, {"unloads": {"other": 1.0}}),
    ("model_canary_started", "model_canary_started", {"model_id": M, "backend": "mlx"}, {}),
    ("model_canary_started minimal", "model_canary_started", {"model_id": M}, {}),
    (
        "model_canary_passed",
        "model_canary_passed",
        {"model_id": M, "backend": "mlx", "duration_sec": 0.84},
        {"canaries": {"passed": 1.0}, "canary_duration": {("passed",): (1, 0.84)}},
    ),
    (
        "model_canary_passed minimal",
        "model_canary_passed",
        {"model_id": M},
        {"canaries": {"passed": 1.0}},
    ),
    (
        "model_canary_failed",
        "model_canary_failed",
        {
            "model_id": M,
            "backend": "mlx",
            "duration_sec": 3.25,
            "error": "RuntimeError: [metal::malloc] out of memory at layer 31",
        },
        {"canaries": {"failed": 1.0}, "canary_duration": {("failed",): (1, 3.25)}},
    ),
    (
        "model_readiness_changed",
        "model_readiness_changed",
        {
            "model_id": M,
            "previous_state": "routable",
            "state": "quarantined",
            "reason": "canary_failed",
            "crash_count": 2,
            "updated_at": NOW,
            "last_failure_reason": "Metal OOM at layer 31",
        },
        {"readiness": {M: "quarantined"}, "crashes": {M: 2.0}},
    ),
    (
        "model_readiness_changed minimal",
        "model_readiness_changed",
        {"model_id": M, "state": "loading"},
        {"readiness": {M: "loading"}},
    ),
    (
        "model_compatibility_recorded",
        "model_compatibility_recorded",
        {
            "model_id": M,
            "backend": "mlx",
            "backend_version": "0.26.1",
            "outcome": "fail",
            "reason": "canary_failed",
            "ts": NOW,
            "metadata": {"attempt": 2},
        },
        {"compat": {("mlx", "fail"): 1.0}},
    ),
    (
        "model_compatibility_recorded minimal",
        "model_compatibility_recorded",
        {"outcome": "pass"},
        {"compat": {("unknown", "pass"): 1.0}},
    ),
    ("model_ttl_evicted", "model_ttl_evicted", {"model_id": M, "idle_seconds": 1800.5}, {}),
    (
        "download_completed",
        "download_completed",
        {
            "download_id": "d1",
            "repo_id": REPO,
            "local_path": "/Users/opta/.cache/huggingface/hub/models--x",
            "duration_sec": 95.5,
        },
        {"downloads": {"completed": 1.0}, "download_duration": {(): (1, 95.5)}},
    ),
    ("download_completed minimal", "download_completed", {}, {"downloads": {"completed": 1.0}}),
    (
        "download_failed",
        "download_failed",
        {"download_id": "d2", "repo_id": REPO, "error": "HTTP 404: repository not found"},
        {"downloads": {"failed": 1.0}},
    ),
    (
        "download_cancelled",
        "download_cancelled",
        {"download_id": "d3", "repo_id": REPO},
        {"downloads": {"cancelled": 1.0}},
    ),
    (
        "download_progress",
        "download_progress",
        {"download_id": "d1", "repo_id": REPO, "progress_percent": 42.0},
        {"download_progress": {REPO: 0.42}},
    ),
    (
        "quantize_progress running",
        "quantize_progress",
        {"model_id": M, "status": "quantizing", "percent": 37.5},
        {"quantize_progress": {M: 0.375}},
    ),
    (
        "quantize_progress completed",
        "quantize_progress",
        {"model_id": M, "status": "completed", "percent": 100},
        {"quantize_jobs": {"completed": 1.0}},
    ),
    (
        "quantize_progress minimal",
        "quantize_progress",
        {"model_id": M, "status": "quantizing"},
        {},
    ),
    (
        "config_reloaded",
        "config_reloaded",
        {"routing_aliases": 3, "memory_threshold": 85, "log_level": "INFO"},
        {"config_reloads": 1.0, "memory_threshold": 0.85},
    ),
    ("config_reloaded minimal", "config_reloaded", {}, {"config_reloads": 1.0}),
    (
        "memory_warning",
        "memory_warning",
        {"used_gb": 470.5, "total_gb": 512.0, "usage_percent": 91.9, "threshold_percent": 90},
        {
            "memory_warnings": 1.0,
            "memory_used": 470.5 * GIB,
            "memory_total": 512.0 * GIB,
            "memory_threshold": 0.9,
        },
    ),
    ("memory_warning minimal", "memory_warning", {}, {"memory_warnings": 1.0}),
    (
        "request_completed success",
        "request_completed",
        {
            "model_id": M,
            "latency_sec": 1.25,
            "prompt_tokens": 120,
            "completion_tokens": 380,
            "stream": True,
            "error": False,
            "client_id": "opta-cli",
            "ttft_sec": 0.18,
            "tokens_per_second": 304.0,
        },
        {
            "requests": {(M, "success"): 1.0},
            "request_duration": {(M,): (1, 1.25)},
            "ttft": {(M,): (1, 0.18)},
            "prompt_tokens": {M: 120.0},
            "completion_tokens": {M: 380.0},
            "window": [304.0],
        },
    ),
    (
        "request_completed error",
        "request_completed",
        {
            "model_id": M,
            "latency_sec": 0.05,
            "prompt_tokens": 900,
            "completion_tokens": 3,
            "stream": False,
            "error": True,
            "ttft_sec": 0.04,
            "tokens_per_second": 60.0,
        },
        {
            "requests": {(M, "error"): 1.0},
            "request_duration": {(M,): (1, 0.05)},
            "ttft": {(M,): (1, 0.04)},
            "prompt_tokens": {M: 900.0},
            "completion_tokens": {M: 3.0},
            "window": [60.0],
        },
    ),
    (
        "request_completed minimal",
        "request_completed",
        {"model_id": M},
        {"requests": {(M, "success"): 1.0}},
    ),
    ("heartbeat", "heartbeat", {"timestamp": NOW}, {}),
    ("heartbeat empty", "heartbeat", {}, {}),
]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in EVENT_CASES],
)
def test_event(name: str, data: dict[str, Any], expected: dict[str, object]) -> None:
    state = LmxState()
    before = observable(state)
    apply_ok(state, name, data)
    assert changes(before, observable(state)) == expected
    assert state.events == {name: 1.0}
    assert set(state.event_errors.values()) == {0.0}


def test_every_protocol_event_type_has_a_case() -> None:
    protocol_types = {
        "model_loaded",
        "model_unloaded",
        "model_canary_started",
        "model_canary_passed",
        "model_canary_failed",
        "model_readiness_changed",
        "model_compatibility_recorded",
        "model_ttl_evicted",
        "download_completed",
        "download_failed",
        "download_cancelled",
        "download_progress",
        "quantize_progress",
        "config_reloaded",
        "memory_warning",
        "request_completed",
        "heartbeat",
    }
    assert {case[1] for case in EVENT_CASES} == protocol_types


def test_download_end_clears_its_progress() -> None:
    state = LmxState()
    apply_ok(
        state, "download_progress", {"download_id": "d1", "repo_id": REPO, "progress_percent": 90}
    )
    apply_ok(
        state,
        "download_progress",
        {"download_id": "d2", "repo_id": "other/repo", "progress_percent": 10},
    )
    apply_ok(state, "download_completed", {"download_id": "d1", "repo_id": REPO, "duration_sec": 5})
    assert state.download_progress == {"other/repo": 0.1}
    apply_ok(state, "download_failed", {"download_id": "d2", "repo_id": "other/repo", "error": "x"})
    assert state.download_progress == {}


def test_requests_accumulate_across_outcomes() -> None:
    state = LmxState()
    for error, latency, prompt in ((False, 0.5, 10), (True, 2.0, 20), (False, 1.0, 30)):
        apply_ok(
            state,
            "request_completed",
            {"model_id": M, "error": error, "latency_sec": latency, "prompt_tokens": prompt},
        )
    assert state.requests == {(M, "success"): 2.0, (M, "error"): 1.0}
    assert state.prompt_tokens == {M: 60.0}
    assert observable(state)["request_duration"] == {(M,): (3, 3.5)}


# -- bad fields: counted, and nothing else changes ---------------------------------------
NAN, INF = math.nan, math.inf
BAD_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    # required fields missing
    ("loaded without model_id", "model_loaded", {"format": "mlx", "memory_gb": 4.0}),
    ("unloaded without model_id", "model_unloaded", {"reason": "lru"}),
    ("readiness without state", "model_readiness_changed", {"model_id": M}),
    ("download_progress without repo", "download_progress", {"progress_percent": 5}),
    ("throughput without tokensPerSecond", "message", envelope("throughput", {"timestamp": 1})),
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
    ("download repo number", "download_cancelled", {"repo_id": 5}),
    ("progress over 100", "download_progress", {"repo_id": REPO, "progress_percent": 150}),
    ("progress string", "download_progress", {"repo_id": REPO, "progress_percent": "42"}),
    ("progress NaN", "download_progress", {"repo_id": REPO, "progress_percent": NAN}),
    (
        "quantize percent over 100",
        "quantize_progress",
        {"model_id": M, "status": "quantizing", "percent": 101},
    ),
    (
        "quantize percent Infinity",
        "quantize_progress",
        {"model_id": M, "status": "quantizing", "percent": INF},
    ),
    ("quantize status number", "quantize_progress", {"model_id": M, "status": 7}),
    ("quantize status missing", "quantize_progress", {"model_id": M, "percent": 5}),
    ("threshold string", "config_reloaded", {"memory_threshold": "85"}),
    ("threshold over 100", "config_reloaded", {"memory_threshold": 185}),
    ("threshold negative", "config_reloaded", {"memory_threshold": -1}),
    ("warning used string", "memory_warning", {"used_gb": "470"}),
    ("warning total Infinity", "memory_warning", {"total_gb": INF}),
    ("warning threshold bool", "memory_warning", {"threshold_percent": True}),
    ("request error string", "request_completed", {"model_id": M, "error": "false"}),
    ("request error number", "request_completed", {"model_id": M, "error": 1}),
    ("request latency negative", "request_completed", {"model_id": M, "latency_sec": -0.1}),
    ("request latency NaN", "request_completed", {"model_id": M, "latency_sec": NAN}),
    ("request ttft Infinity", "request_completed", {"model_id": M, "ttft_sec": INF}),
    ("request prompt tokens string", "request_completed", {"model_id": M, "prompt_tokens": "120"}),
    (
        "request completion tokens bool",
        "request_completed",
        {"model_id": M, "completion_tokens": True},
    ),
    ("request tps NaN", "request_completed", {"model_id": M, "tokens_per_second": NAN}),
    ("request tps Infinity", "request_completed", {"model_id": M, "tokens_per_second": INF}),
    ("status used string", "message", envelope("status", {"vram_used_gb": "61"})),
    ("status active bool", "message", envelope("status", {"active_requests": True})),
    ("status uptime negative", "message", envelope("status", {"uptime_seconds": -5})),
    ("status uptime Infinity", "message", envelope("status", {"uptime_seconds": INF})),
    ("status tps Infinity", "message", envelope("model_change", {"tokens_per_second": INF})),
    ("status temperature string", "message", envelope("status", {"temperature_celsius": "hot"})),
    ("status temperature bool", "message", envelope("status", {"temperature_celsius": True})),
    ("status temperature NaN", "message", envelope("status", {"temperature_celsius": NAN})),
    (
        "status temperature beyond float",
        "message",
        envelope("status", {"temperature_celsius": 10**400}),
    ),
    ("status models string", "message", envelope("status", {"loaded_models": "m"})),
    ("status models of strings", "message", envelope("status", {"loaded_models": ["m"]})),
    ("status model id number", "message", envelope("status", {"loaded_models": [{"id": 5}]})),
    ("status model without id", "message", envelope("status", {"loaded_models": [{"name": "x"}]})),
    (
        "status model vram string",
        "message",
        envelope("status", {"loaded_models": [{"id": "x", "vram_gb": "4"}]}),
    ),
    (
        "status bad last, good first",
        "message",
        envelope("status", {"vram_used_gb": 1.0, "loaded_models": [], "temperature_celsius": "x"}),
    ),
    ("throughput string", "message", envelope("throughput", {"tokensPerSecond": "41.5"})),
    ("throughput NaN", "message", envelope("throughput", {"tokensPerSecond": NAN})),
    ("throughput negative", "message", envelope("throughput", {"tokensPerSecond": -1})),
    ("throughput bool", "message", envelope("throughput", {"tokensPerSecond": True})),
    ("throughput Infinity", "message", envelope("throughput", {"tokensPerSecond": INF})),
]


def event_label(name: str, data: dict[str, Any]) -> str:
    return str(data["type"]) if name == "message" else name


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
    label = event_label(name, data)
    assert state.events == {**events, label: events.get(label, 0.0) + 1}
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


# -- input errors before any handler -------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("model_loaded", "{not json", "malformed_json"),
        ("model_loaded", "[1, 2]", "not_an_object"),
        ("heartbeat", "null", "not_an_object"),
        ("message", '{"type": "status"}', "unknown_envelope"),
        ("message", '{"type": "agent_step", "data": {"x": 1}}', "unknown_envelope"),
        ("model_loaded", '{"model_id": "' + "x" * (1 << 20) + '"}', "oversize"),
    ],
)
def test_input_errors_are_counted_and_change_nothing(name: str, text: str, reason: str) -> None:
    state = busy_state()
    before, errors = observable(state), dict(state.event_errors)
    error = ingest(state, name, text, NOW)
    assert error is not None
    assert error.reason == reason
    assert observable(state) == before
    assert state.event_errors == {**errors, reason: errors[reason] + 1}


def test_unknown_envelope_type_counts_under_its_type() -> None:
    state = LmxState()
    error = feed(state, "message", envelope("agent_step", {"step": 1}))
    assert error is not None
    assert error.reason == "unknown_envelope"
    assert state.events == {"agent_step": 1.0}


# -- unknown event types -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("agent_run_started", {"agent_id": "planner", "model_id": M}),
        ("skill_invoked", {"skill": "web_search", "duration_sec": "n/a"}),
        ("rag_index_updated", {}),
        ("model_loaded_v2", {"model_id": M2, "format": "gguf", "memory_gb": 8}),
    ],
)
def test_unknown_event_types_are_only_counted(name: str, data: dict[str, Any]) -> None:
    state = busy_state()
    before, events, errors = observable(state), dict(state.events), dict(state.event_errors)
    assert feed(state, name, data) is None
    assert observable(state) == before
    assert state.events == {**events, name: 1.0}
    assert state.event_errors == errors


def test_more_than_32_unknown_types_collapse_into_other() -> None:
    state = LmxState()
    names = [f"future_event_{i:02d}" for i in range(40)]
    for name in names:
        apply_ok(state, name, {})
    assert {n: state.events[n] for n in names[:32]} == dict.fromkeys(names[:32], 1.0)
    assert not set(names[32:]) & set(state.events)
    assert state.events["other"] == 8.0
    apply_ok(state, names[0], {})  # a type admitted before the cap keeps its label
    apply_ok(state, names[39], {})
    apply_ok(state, "heartbeat", {"timestamp": NOW})  # known types are never capped
    apply_ok(state, "message", envelope("throughput", {"tokensPerSecond": 1.0}))
    assert state.events[names[0]] == 2.0
    assert state.events["other"] == 9.0
    assert state.events["heartbeat"] == 1.0
    assert state.events["throughput"] == 1.0
    assert len(state.events) == 32 + 3


# -- free text normalised to fixed label sets ---------------------------------------------
MISSING = object()


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("manual", "manual"),
        ("ttl", "ttl"),
        ("lru", "lru"),
        ("canary_failed", "canary_failed"),
        ("Manual", "other"),
        ("idle for 1800s", "other"),
        ("lru: memory pressure 93%", "other"),
        ("", "other"),
        (None, "other"),
        (5, "other"),
        (MISSING, "other"),
    ],
)
def test_unload_reasons(reason: object, label: str) -> None:
    state = LmxState()
    data: dict[str, object] = {"model_id": M}
    if reason is not MISSING:
        data["reason"] = reason
    apply_ok(state, "model_unloaded", data)
    assert state.unloads[label] == 1.0
    assert sum(state.unloads.values()) == 1.0
    assert set(state.unloads) == {"manual", "ttl", "lru", "canary_failed", "other"}


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("completed", "completed"),
        ("cancelled", "cancelled"),
        ("failed", "failed"),
        ("failed: some message", "failed"),
        ("failed: [metal::malloc] Resource limit (499000) exceeded\nTraceback ...", "failed"),
        ("quantizing", None),
        ("cancelling", None),
    ],
)
def test_quantize_statuses(status: str, outcome: str | None) -> None:
    state = LmxState()
    apply_ok(state, "quantize_progress", {"model_id": M, "status": "quantizing", "percent": 10})
    apply_ok(state, "quantize_progress", {"model_id": M, "status": status, "percent": 40})
    assert set(state.quantize_jobs) == {"completed", "failed", "cancelled"}
    if outcome is None:
        assert state.quantize_progress == {M: 0.4}
        assert sum(state.quantize_jobs.values()) == 0
    else:
        assert state.quantize_progress == {}  # a finished job is no longer running
        assert state.quantize_jobs[outcome] == 1.0
        assert sum(state.quantize_jobs.values()) == 1.0


@pytest.mark.parametrize(
    ("backend", "label"),
    [
        ("mlx", "mlx"),
        ("gguf", "gguf"),
        ("llama_cpp", "llama_cpp"),
        ("vllm", "vllm"),
        (MISSING, "unknown"),
        ("llama.cpp b3561 (Metal; M2 Ultra)", "other"),
        ("mlx-lm 0.26.1", "other"),
        ("error: backend crashed\nTraceback", "other"),
        ("x" * 65, "other"),
        (5, "other"),
    ],
)
def test_compatibility_backend_label(backend: object, label: str) -> None:
    state = LmxState()
    data: dict[str, object] = {"model_id": M, "outcome": "pass", "backend_version": "0.26.1"}
    if backend is not MISSING:
        data["backend"] = backend
    apply_ok(state, "model_compatibility_recorded", data)
    assert state.compat == {(label, "pass"): 1.0}


def test_compatibility_backends_stay_few() -> None:
    state = LmxState()
    for i in range(100):
        apply_ok(
            state, "model_compatibility_recorded", {"backend": f"backend_{i}", "outcome": "pass"}
        )
    backends = {backend for backend, _ in state.compat}
    assert "other" in backends
    assert len(backends) <= 40
    assert sum(state.compat.values()) == 100.0


@pytest.mark.parametrize(
    ("fmt", "label"),
    [
        ("mlx", "mlx"),
        ("gguf", "gguf"),
        ("MLX", "mlx"),
        ("GGUF", "gguf"),
        ("safetensors", "other"),
        ("", "other"),
        (5, "other"),
        (MISSING, "unknown"),
    ],
)
def test_model_formats(fmt: object, label: str) -> None:
    state = LmxState()
    data: dict[str, object] = {"model_id": M, "duration_sec": 1.0}
    if fmt is not MISSING:
        data["format"] = fmt
    apply_ok(state, "model_loaded", data)
    assert state.loaded == {M: label}
    assert state.loads == {(M, label): 1.0}
    assert set(state.load_duration.series) == {(label,)}


# -- the model cardinality cap ------------------------------------------------------------
def load(state: LmxState, model: str, memory_gb: float = 1.0) -> None:
    apply_ok(state, "model_loaded", {"model_id": model, "format": "mlx", "memory_gb": memory_gb})


def test_fourth_model_is_refused_and_counted() -> None:
    state = LmxState(max_models=3)
    for model in ("a", "b", "c"):
        load(state, model)
    assert state.series_dropped() == {}
    load(state, "d")
    assert set(state.loaded) == {"a", "b", "c"}
    assert set(state.model_memory) == {"a", "b", "c"}
    dropped = state.series_dropped()
    assert dropped["opta_lmx_model_loaded"] == 1.0
    assert dropped["opta_lmx_model_memory_bytes"] == 1.0
    assert dropped["opta_lmx_model_loads_total"] == 1.0
    load(state, "a")  # an admitted model is never refused
    assert state.series_dropped() == dropped
    for model in ("a", "b", "c", "d"):
        apply_ok(state, "model_readiness_changed", {"model_id": model, "state": "loading"})
    assert set(state.readiness) == {"a", "b", "c"}
    assert state.series_dropped()["opta_lmx_model_readiness"] == 1.0


def test_refused_request_model_is_counted() -> None:
    state = LmxState(max_models=1)
    apply_ok(state, "request_completed", {"model_id": "a", "latency_sec": 1})
    apply_ok(
        state, "request_completed", {"model_id": "b", "latency_sec": 1, "tokens_per_second": 9.0}
    )
    assert state.requests == {("a", "success"): 1.0}
    assert set(state.request_duration.series) == {("a",)}
    assert state.series_dropped() == {"opta_lmx_requests_total": 1.0}
    assert state.window.copy() == [9.0]  # throughput has no model label: always kept


@pytest.mark.parametrize(("length", "admitted"), [(256, True), (257, False), (5000, False)])
def test_model_id_length_limit(length: int, admitted: bool) -> None:
    state = LmxState()
    model = "m" * length
    load(state, model)
    assert (model in state.loaded) is admitted
    if admitted:
        assert state.series_dropped() == {}
    else:
        assert state.series_dropped()["opta_lmx_model_loaded"] == 1.0


ODD_IDS = [
    '/m/we"ird\\x.gguf',
    'C:\\models\\"quoted"\\model.gguf',
    "line one\nline two",
    "tab\tand\rreturn",
    "🦙 llama-3 ✨",
    "caf\u00e9/mod\u00e8le",
    '{model="x"} 1',
]


@pytest.mark.parametrize("model", ODD_IDS)
def test_odd_model_ids_are_kept_as_is(model: str) -> None:
    state = LmxState()
    load(state, model, 2.0)
    apply_ok(state, "model_readiness_changed", {"model_id": model, "state": "routable"})
    apply_ok(state, "request_completed", {"model_id": model, "prompt_tokens": 3})
    assert state.loaded == {model: "mlx"}
    assert state.model_memory == {model: 2 * GIB}
    assert state.readiness == {model: "routable"}
    assert state.prompt_tokens == {model: 3.0}
    assert state.series_dropped() == {}


def test_unload_frees_the_gauge_slots() -> None:
    state = LmxState(max_models=3)
    for model in ("a", "b", "c"):
        load(state, model)
        apply_ok(
            state,
            "model_readiness_changed",
            {"model_id": model, "state": "routable", "crash_count": 0},
        )
    apply_ok(state, "model_unloaded", {"model_id": "a", "reason": "lru"})
    load(state, "d")
    apply_ok(
        state, "model_readiness_changed", {"model_id": "d", "state": "routable", "crash_count": 1}
    )
    assert set(state.loaded) == {"b", "c", "d"}
    assert set(state.model_memory) == {"b", "c", "d"}
    assert set(state.readiness) == {"b", "c", "d"}
    assert set(state.crashes) == {"b", "c", "d"}
    dropped = state.series_dropped()
    for metric in (
        "opta_lmx_model_loaded",
        "opta_lmx_model_memory_bytes",
        "opta_lmx_model_readiness",
        "opta_lmx_model_crashes",
    ):
        assert metric not in dropped


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


# -- reconciliation against snapshots -------------------------------------------------------
def sync(state: LmxState) -> None:
    """A first snapshot that agrees with the events: drift is measured after it."""
    assert state.reconcile(Snapshot(models=dict.fromkeys(state.loaded)), NOW, state.seq) == 0


def test_first_snapshot_fills_an_empty_state_without_drift() -> None:
    state = LmxState()
    assert state.reconcile(Snapshot(models={"a": 1.0, "b": None}), NOW, state.seq) == 0
    assert state.loaded == {"a": "unknown", "b": "unknown"}
    assert state.model_memory == {"a": 1.0 * GIB}
    assert state.state_drift == 0.0


def test_reconcile_removes_and_adds_and_counts_drift() -> None:
    state = LmxState()
    load(state, "a")
    load(state, "b")
    apply_ok(state, "model_readiness_changed", {"model_id": "a", "state": "routable"})
    sync(state)
    drift = state.reconcile(Snapshot(models={"b": 4.0, "c": 2.0}), NOW, state.seq)
    assert drift == 2
    assert state.state_drift == 2.0
    assert state.loaded == {"b": "mlx", "c": "unknown"}
    assert "a" not in state.readiness
    assert state.model_memory == {"b": 4.0 * GIB, "c": 2.0 * GIB}

    assert state.reconcile(Snapshot(models={"b": 4.0, "c": 2.0}), NOW, state.seq) == 0
    assert state.state_drift == 2.0
    assert state.reconcile(Snapshot(models={}), NOW, state.seq) == 2
    assert state.state_drift == 4.0
    assert state.loaded == {}


def test_reconcile_gauges() -> None:
    state = loaded_state()
    sync(state)
    snap = example_snapshot({M: 4.62, "mlx-community/gemma-3-4b": None})
    assert state.reconcile(snap, NOW, state.seq) == 1
    assert state.version == "0.1.0"
    assert state.start_time == NOW - 5231.4
    assert state.memory_total == 512 * 1024**3
    assert state.memory_used == 61.2 * 1024**3
    assert state.memory_available == 450.8 * 1024**3
    assert state.memory_threshold == 0.9
    assert state.in_flight == 1
    assert state.max_concurrent == 4
    assert state.loaded == {M: "mlx", "mlx-community/gemma-3-4b": "unknown"}  # format kept
    assert state.model_memory == {M: 4.62 * 1024**3}


def test_snapshot_without_gauges_keeps_the_gauges() -> None:
    state = busy_state()
    before = observable(state)
    state.reconcile(Snapshot(models={M: 4.62, M2: 8.0}), NOW, state.seq)
    assert observable(state) == before


def test_reconcile_does_not_touch_a_model_loaded_after_since_seq() -> None:
    state = LmxState()
    load(state, "a")
    sync(state)
    since = state.seq  # the snapshot is requested now ...
    load(state, "b")  # ... an event arrives while it is in flight ...
    drift = state.reconcile(Snapshot(models={"a": 1.0}), NOW, since)  # ... without b
    assert drift == 0
    assert state.state_drift == 0.0
    assert set(state.loaded) == {"a", "b"}


def test_reconcile_does_not_touch_a_model_unloaded_after_since_seq() -> None:
    state = LmxState()
    load(state, "a")
    load(state, "b")
    sync(state)
    since = state.seq
    apply_ok(state, "model_unloaded", {"model_id": "b", "reason": "manual"})
    drift = state.reconcile(Snapshot(models={"a": 1.0, "b": 1.0}), NOW, since)
    assert drift == 0
    assert state.state_drift == 0.0
    assert set(state.loaded) == {"a"}


def test_the_race_guard_is_only_for_that_snapshot() -> None:
    state = LmxState()
    load(state, "a")
    sync(state)
    since = state.seq
    load(state, "b")
    state.reconcile(Snapshot(models={"a": 1.0}), NOW, since)
    # a later snapshot, requested after the event, that still disagrees is believed
    assert state.reconcile(Snapshot(models={"a": 1.0}), NOW, state.seq) == 1
    assert set(state.loaded) == {"a"}


def test_reconcile_corrects_models_settled_before_since_seq() -> None:
    state = LmxState()
    load(state, "a")
    load(state, "b")
    sync(state)
    since = state.seq
    apply_ok(state, "heartbeat", {"timestamp": NOW})  # unrelated traffic after since
    assert state.reconcile(Snapshot(models={"b": 1.0}), NOW, since) == 1
    assert set(state.loaded) == {"b"}


# -- counters never decrease -----------------------------------------------------------
def test_counters_never_decrease_along_a_session() -> None:
    state = LmxState(max_models=3)
    steps: list[tuple[str, object]] = [
        *((name, data) for name, data in LOAD),
        ("request_completed", {"model_id": M, "latency_sec": 1.0, "error": True}),
        ("model_loaded", {"model_id": "x", "memory_gb": 2, "duration_sec": 4}),
        ("message", envelope("status", {"loaded_models": [{"id": "y"}]})),
        ("model_loaded", {"model_id": "z", "duration_sec": NAN}),
        ("model_unloaded", {"model_id": "y", "reason": "lru"}),
        ("future_event", {}),
        ("model_loaded", {"model_id": "w", "format": "gguf"}),
        UNLOAD,
    ]
    for name, data in steps:
        before = counters(state)
        feed(state, name, data)
        assert_monotonic(before, counters(state))
        before = counters(state)
        state.reconcile(Snapshot(models={"q": 1.0}), NOW, state.seq)
        assert_monotonic(before, counters(state))


# -- property: arbitrary input never breaks the invariants --------------------------------
NUMERIC_FIELDS = (
    "memory_gb", "duration_sec", "memory_freed_gb", "crash_count", "updated_at",
    "idle_seconds", "progress_percent", "percent", "routing_aliases", "memory_threshold",
    "used_gb", "total_gb", "usage_percent", "threshold_percent", "latency_sec",
    "prompt_tokens", "completion_tokens", "ttft_sec", "tokens_per_second", "timestamp",
    "vram_used_gb", "vram_total_gb", "active_requests", "temperature_celsius",
    "uptime_seconds", "tokensPerSecond", "vram_gb",
)  # fmt: skip
TEXT_FIELDS = (
    "model_id", "format", "reason", "backend", "previous_state", "state",
    "last_failure_reason", "backend_version", "outcome", "download_id", "repo_id",
    "local_path", "status", "log_level", "client_id", "error", "stream", "id", "name",
)  # fmt: skip
MODEL_IDS = ("m1", "m2", "m3", "m4", "m5", 'we"ird\\x', "🦙\nnl", "x" * 300)
WORDS = (
    "mlx", "gguf", "manual", "ttl", "lru", "canary_failed", "admitted", "loading",
    "canary_pending", "routable", "quarantined", "unknown", "pass", "fail", "quantizing",
    "completed", "cancelling", "cancelled", "failed: boom", "",
)  # fmt: skip
EVENT_NAMES = (
    "model_loaded", "model_unloaded", "model_canary_started", "model_canary_passed",
    "model_canary_failed", "model_readiness_changed", "model_compatibility_recorded",
    "model_ttl_evicted", "download_completed", "download_failed", "download_cancelled",
    "download_progress", "quantize_progress", "config_reloaded", "memory_warning",
    "request_completed", "heartbeat", "agent_step",
)  # fmt: skip

scalars: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.sampled_from([0, -1, 100, 101, 1e308, 10**400, -(10**400)]),
    st.sampled_from(WORDS),
    st.sampled_from(MODEL_IDS),
    st.text(max_size=8),
)
json_values: st.SearchStrategy[object] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(TEXT_FIELDS + NUMERIC_FIELDS) | st.text(max_size=4), inner, max_size=3
        ),
    ),
    max_leaves=6,
)
good_numbers: st.SearchStrategy[object] = st.one_of(
    st.floats(min_value=0, max_value=100), st.integers(min_value=0, max_value=1000)
)
edge_numbers: st.SearchStrategy[object] = st.sampled_from(
    [math.nan, math.inf, -math.inf, -1, -0.0, 1e308, 10**400, True, "1"]
)
model_entries = st.lists(
    st.fixed_dictionaries(
        {"id": st.sampled_from(MODEL_IDS) | scalars},
        optional={"vram_gb": good_numbers | edge_numbers, "name": scalars},
    ),
    max_size=5,
)
payloads: st.SearchStrategy[dict[str, object]] = st.fixed_dictionaries(
    {},
    optional={
        "model_id": st.sampled_from(MODEL_IDS) | scalars,
        "repo_id": st.sampled_from(MODEL_IDS) | scalars,
        "state": st.sampled_from(WORDS) | scalars,
        "status": st.sampled_from(WORDS) | scalars,
        "reason": st.sampled_from(WORDS) | scalars,
        "outcome": st.sampled_from(WORDS) | scalars,
        "format": st.sampled_from(WORDS) | scalars,
        "error": st.booleans() | scalars,
        "loaded_models": model_entries | json_values,
        **{key: good_numbers | edge_numbers | scalars for key in NUMERIC_FIELDS},
        **{key: json_values for key in ("backend", "metadata", "ts", "stream")},
    },
)
envelopes = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["status", "model_change", "throughput", "agent_step"]) | scalars,
        "data": payloads | json_values,
    }
)


@dataclass(frozen=True)
class Event:
    name: str
    data: str


@dataclass(frozen=True)
class Resync:
    models: dict[str, float | None]
    since_back: int  # how many events before now the snapshot was requested


steps = st.one_of(
    st.builds(Event, st.sampled_from(EVENT_NAMES), payloads.map(json.dumps)),
    st.builds(Event, st.just("message"), envelopes.map(json.dumps)),
    st.builds(
        Event,
        st.sampled_from((*EVENT_NAMES, "message")) | st.text(max_size=12),
        st.text(max_size=40),
    ),
    st.builds(
        Resync,
        st.dictionaries(
            st.sampled_from(MODEL_IDS),
            st.none() | st.floats(min_value=0, max_value=512),
            max_size=6,
        ),
        st.integers(min_value=0, max_value=5),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=25))
def test_arbitrary_input_never_breaks_the_invariants(sequence: list[Event | Resync]) -> None:
    state = LmxState(max_models=3, window_size=5)
    for step in sequence:
        before = counters(state)
        if isinstance(step, Event):
            result = ingest(state, step.name, step.data, NOW)
            assert result is None or isinstance(result, EventError)
        else:
            state.reconcile(Snapshot(models=step.models), NOW, max(state.seq - step.since_back, 0))
        assert_monotonic(before, counters(state))
        for table in (state.loaded, state.model_memory, state.readiness, state.crashes):
            assert len(table) <= 3
        assert len(state.window) <= 5
        assert all(math.isfinite(v) for v in counters(state).values())


def test_a_model_the_cap_refuses_is_not_drift() -> None:
    """Otherwise every snapshot would count it again and resubscribe forever."""
    state = LmxState(max_models=2)
    snap = Snapshot(models={"a": 1.0, "b": 1.0, "c": 1.0, "d" * 300: 1.0})
    drifts = [state.reconcile(snap, NOW, state.seq) for _ in range(4)]
    assert drifts == [0, 0, 0, 0]
    assert len(state.loaded) == 2
    assert state.series_dropped()["opta_lmx_model_loaded"] >= 2
