"""Feeding LMX events into an LmxState and seeing what changed: what the core unit tests
share (the real load sequence, a busy state, every counter sample, the changes an event made,
relay reads of LMX's completion-token counter for the throughput window)."""

from __future__ import annotations

import json
import math
from typing import Any

from opta_exporter.core.events import EventError
from opta_exporter.core.histogram import HistogramFamily
from opta_exporter.core.ingest import ingest
from opta_exporter.core.state import LmxState, Snapshot
from opta_exporter.core.throughput import TokenCount
from opta_exporter.core.window import ThroughputWindow
from tests.helpers import FIXTURES, read_sse

NOW = 1_718_000_000.0
M = "mlx-community/Qwen3-8B-4bit"
M2 = "/Volumes/models/llama-3.1-8b-instruct-q4_k_m.gguf"
REPO = "mlx-community/Qwen3-8B-4bit"
NAN, INF = math.nan, math.inf

LOAD_UNLOAD = read_sse(FIXTURES / "lmx_load_unload.sse")
LOAD = LOAD_UNLOAD[:-1]
UNLOAD = LOAD_UNLOAD[-1]


def feed(state: LmxState, name: str, data: object, now: float = NOW) -> EventError | None:
    text = data if isinstance(data, str) else json.dumps(data)
    return ingest(state, name, text, now)


def apply_ok(state: LmxState, name: str, data: object, now: float = NOW) -> None:
    error = feed(state, name, data, now)
    assert error is None, error


def read_tokens(
    state: LmxState, mono: float, tokens: float, uptime: float | None = None
) -> float | None:
    """One relay read of LMX's lmx_completion_tokens_total, `mono` seconds into the test
    (the wall clock runs alongside from NOW): the rate it adds to the window, if any."""
    return state.count_tokens(TokenCount(mono, NOW + mono, tokens, uptime))


# Counted separately (events, event_errors) or pure bookkeeping (ordering marks, label
# sets, the cap itself, whose refusals show in series_dropped()).
BOOKKEEPING = frozenset(
    {
        "events",
        "event_errors",
        "seq",
        "synced",
        "model_seq",
        "readiness_seq",
        "open_labels",
        "cap",
        "max_models",
    }
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
            out[name] = value.samples(-math.inf)  # every sample kept, whatever its age
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
)
SCALAR_COUNTERS = ("config_reloads", "state_drift")
HISTOGRAMS = ("load_duration", "canary_duration", "download_duration")


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
    apply_ok(state, "quantize_progress", {"model_id": M, "status": "completed", "percent": 100})
    apply_ok(state, "config_reloaded", {"memory_threshold": 85})
    apply_ok(
        state,
        "download_completed",
        {"download_id": "d1", "repo_id": REPO, "local_path": "/m", "duration_sec": 95.0},
    )
    # two relay reads of LMX's completion-token counter: one rate (10 tokens/s) in the window
    read_tokens(state, 0.0, 1000.0, uptime=100.0)
    read_tokens(state, 15.0, 1150.0, uptime=115.0)
    state.reconcile(
        Snapshot(
            version="0.1.0",
            uptime_seconds=100.0,
            memory_total_gb=512.0,
            memory_used_gb=20.0,
            memory_available_gb=400.0,
            in_flight=1,
            max_concurrent=4,
            models={M: 4.62, M2: 8.0},
        ),
        NOW,
        state.seq,
    )
    return state


def load(state: LmxState, model: str, memory_gb: float = 1.0) -> None:
    apply_ok(state, "model_loaded", {"model_id": model, "format": "mlx", "memory_gb": memory_gb})
