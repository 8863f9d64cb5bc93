"""ingest() (core/ingest.py): every LMX event type and what it changes, the real load
sequence, input errors and unknown types counted, counters that never go down -- through
the public seams only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from opta_exporter.core.events import MAX_EVENT_CHARS
from opta_exporter.core.ingest import NAMED, ingest
from opta_exporter.core.state import GIB, LmxState, Snapshot
from tests.helpers import LMX_EVENT_TYPES, LOAD_SEQUENCE
from tests.unit.core.feeding import (
    LOAD,
    LOAD_UNLOAD,
    M2,
    NAN,
    NOW,
    REPO,
    UNLOAD,
    M,
    apply_ok,
    assert_monotonic,
    busy_state,
    changes,
    counters,
    feed,
    loaded_state,
    observable,
)


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
        "quantize_progress running",
        "quantize_progress",
        {"model_id": M, "status": "quantizing", "percent": 0},
        {},  # LMX's 0 at the start says nothing /admin/quantize does not
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
    protocol_types = LMX_EVENT_TYPES
    assert {case[1] for case in EVENT_CASES} == protocol_types
    assert set(NAMED) == protocol_types  # the handler table is the protocol's list


# -- what no running LMX sends: counted, and nothing more ------------------------------------
# LMX's docstrings promise these, but no LMX code publishes them (protocol page); the
# payloads are what the docstrings describe, so a build that did send them is covered.
NEVER_SENT: list[tuple[str, str, dict[str, Any]]] = [
    (
        "request_completed",
        "request_completed",
        {
            "model_id": M,
            "latency_sec": 1.25,
            "prompt_tokens": 120,
            "completion_tokens": 380,
            "stream": True,
            "error": False,
            "ttft_sec": 0.18,
            "tokens_per_second": 304.0,
        },
    ),
    ("request_completed with an error", "request_completed", {"model_id": M, "error": True}),
    (
        "request_completed with bad fields",
        "request_completed",
        {"model_id": 5, "latency_sec": NAN, "error": "yes"},
    ),
    (
        "memory_warning",
        "memory_warning",
        {"used_gb": 470.5, "total_gb": 512.0, "usage_percent": 91.9, "threshold_percent": 90},
    ),
    ("memory_warning with bad fields", "memory_warning", {"used_gb": "470", "total_gb": -1}),
    ("download_progress", "download_progress", {"repo_id": REPO, "progress_percent": 90}),
]


@pytest.mark.parametrize(
    ("name", "data"), [pytest.param(*case[1:], id=case[0]) for case in NEVER_SENT]
)
def test_a_never_sent_event_is_counted_and_changes_nothing(name: str, data: dict[str, Any]) -> None:
    """No memory, request, token or window figure moves; no event error, whatever its
    fields hold (nothing reads them); not even the event order a snapshot compares."""
    assert_only_counted(lambda state: feed(state, name, data), name)


def assert_only_counted(apply: Callable[[LmxState], object], counted_as: str) -> None:
    """`apply` on a busy state returns no error, counts one event under `counted_as`
    and changes nothing else, not even the event order a snapshot compares."""
    state = busy_state()
    before, events, errors, seq = (
        observable(state),
        dict(state.events),
        dict(state.event_errors),
        state.seq,
    )
    assert apply(state) is None
    assert observable(state) == before
    assert state.events == {**events, counted_as: events.get(counted_as, 0.0) + 1}
    assert state.event_errors == errors
    assert state.seq == seq


def test_never_sent_types_share_the_open_label_set_of_unknown_types() -> None:
    """request_completed and memory_warning are no longer known types: past the cap of
    32 unknown types they count as `other` like any other."""
    state = LmxState()
    for i in range(32):
        apply_ok(state, f"future_event_{i:02d}", {})
    apply_ok(state, "request_completed", {"model_id": M, "latency_sec": 0.5})
    apply_ok(state, "memory_warning", {"used_gb": 470.5})
    assert "request_completed" not in state.events
    assert "memory_warning" not in state.events
    assert state.events["other"] == 2.0


# -- unnamed events (SSE type `message`): no LMX event today -------------------------------
UNNAMED: list[tuple[str, str]] = [
    (
        "old status envelope",
        '{"type": "status", "data": {"vram_used_gb": 61.2, "loaded_models": []}}',
    ),
    ("old throughput envelope", '{"type": "throughput", "data": {"tokensPerSecond": 41.5}}'),
    ("old envelope of an unknown type", '{"type": "agent_step", "data": {"x": 1}}'),
    ("envelope without data", '{"type": "status"}'),
    ("a named event's payload", '{"model_id": "m", "format": "mlx", "memory_gb": 4.0}'),
    ("empty object", "{}"),
]


@pytest.mark.parametrize("text", [pytest.param(text, id=id_) for id_, text in UNNAMED])
def test_an_unnamed_event_is_counted_as_message_and_changes_nothing(text: str) -> None:
    assert_only_counted(lambda state: ingest(state, "message", text, NOW), "message")


# -- input errors before any handler -------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("model_loaded", "{not json", "malformed_json"),
        ("model_loaded", "[1, 2]", "not_an_object"),
        ("heartbeat", "null", "not_an_object"),
        ("message", "{not json", "malformed_json"),
        ("message", "[1]", "not_an_object"),
        ("request_completed", '"done"', "not_an_object"),
        ("model_loaded", '{"model_id": "' + "x" * MAX_EVENT_CHARS + '"}', "oversize"),
    ],
)
def test_input_errors_are_counted_and_change_nothing(name: str, text: str, reason: str) -> None:
    state = busy_state()
    before, events, errors = observable(state), dict(state.events), dict(state.event_errors)
    error = ingest(state, name, text, NOW)
    assert error is not None
    assert error.reason == reason
    assert observable(state) == before
    assert state.event_errors == {**errors, reason: errors[reason] + 1}
    assert state.events == {**events, name: events.get(name, 0.0) + 1}


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
    apply_ok(state, "message", {"type": "throughput", "data": {"tokensPerSecond": 1.0}})
    assert state.events[names[0]] == 2.0
    assert state.events["other"] == 9.0
    assert state.events["heartbeat"] == 1.0
    assert state.events["message"] == 1.0
    assert len(state.events) == 32 + 3


# -- counters never decrease -----------------------------------------------------------
def test_counters_never_decrease_along_a_session() -> None:
    state = LmxState(max_models=3)
    steps: list[tuple[str, object]] = [
        *((name, data) for name, data in LOAD),
        ("request_completed", {"model_id": M, "latency_sec": 1.0, "error": True}),
        ("model_loaded", {"model_id": "x", "memory_gb": 2, "duration_sec": 4}),
        ("message", {"type": "status", "data": {"loaded_models": [{"id": "y"}]}}),
        ("model_loaded", {"model_id": "y", "format": "mlx"}),
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
