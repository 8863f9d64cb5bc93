"""Property of ingest(), reconcile() and count_tokens(): arbitrary event names, payloads,
snapshots and relay token reads never break the invariants (counters never go down, the cap
holds, every number stays finite, the window keeps only its span of finite rates)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opta_exporter.core.events import EventError
from opta_exporter.core.ingest import NAMED, ingest
from opta_exporter.core.labels import READINESS_STATES
from opta_exporter.core.state import LmxState, Snapshot
from opta_exporter.core.throughput import TokenCount
from tests.unit.core.feeding import NOW, assert_monotonic, counters

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
    "mlx", "gguf", "manual", "ttl", "lru", "canary_failed", *READINESS_STATES, "unknown",
    "pass", "fail", "quantizing", "completed", "cancelling", "cancelled", "failed: boom", "",
)  # fmt: skip
# every named type LMX sends, one it may add, and those only its docstrings promise
EVENT_NAMES = (*NAMED, "agent_step", "request_completed", "memory_warning", "download_progress")
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
# the {type, data} envelopes no LMX ever sent, unnamed: counted as `message`, nothing more
old_envelopes = st.fixed_dictionaries(
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


@dataclass(frozen=True)
class TokenRead:
    """A relay read of lmx_completion_tokens_total, `after` seconds after the last one."""

    after: float
    tokens: float
    uptime: float | None


WINDOW = 60.0
steps = st.one_of(
    st.builds(Event, st.sampled_from(EVENT_NAMES), payloads.map(json.dumps)),
    st.builds(Event, st.just("message"), old_envelopes.map(json.dumps)),
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
    st.builds(
        TokenRead,
        # reads are HTTP round trips apart (or none: the same instant)
        st.just(0.0) | st.floats(min_value=1e-3, max_value=2 * WINDOW),
        st.floats(min_value=0, max_value=1e12) | st.integers(min_value=0, max_value=10**12),
        st.none() | st.floats(min_value=0, max_value=1e7),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=25))
def test_arbitrary_input_never_breaks_the_invariants(
    sequence: list[Event | Resync | TokenRead],
) -> None:
    state = LmxState(max_models=3, window_duration=WINDOW)
    mono = 0.0
    for step in sequence:
        before = counters(state)
        if isinstance(step, Event):
            result = ingest(state, step.name, step.data, NOW)
            assert result is None or isinstance(result, EventError)
        elif isinstance(step, Resync):
            state.reconcile(Snapshot(models=step.models), NOW, max(state.seq - step.since_back, 0))
        else:
            mono += step.after
            added = state.count_tokens(TokenCount(mono, NOW + mono, step.tokens, step.uptime))
            assert added is None or (math.isfinite(added) and added >= 0)
        assert_monotonic(before, counters(state))
        for table in (state.loaded, state.model_memory, state.readiness, state.crashes):
            assert len(table) <= 3
        assert all(math.isfinite(v) for v in counters(state).values())
        samples = state.throughput.window.samples(NOW + mono)
        assert all(NOW + mono - WINDOW <= ts <= NOW + mono for ts, _ in samples)
        assert all(math.isfinite(rate) and rate >= 0 for _, rate in samples)
