"""LmxState (core/state.py): reconciliation against snapshots, drift, the race guard for
events newer than the snapshot, the cap's refusals that are not drift, and the read-only
second look (disagrees)."""

from __future__ import annotations

from opta_exporter.core.state import GIB, LmxState, Snapshot
from tests.helpers import example_snapshot
from tests.unit.core.feeding import (
    M2,
    NOW,
    M,
    apply_ok,
    busy_state,
    load,
    loaded_state,
    observable,
)


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


def test_a_model_the_cap_refuses_is_not_drift() -> None:
    """Otherwise every snapshot would count it again and resubscribe forever."""
    state = LmxState(max_models=2)
    snap = Snapshot(models={"a": 1.0, "b": 1.0, "c": 1.0, "d" * 300: 1.0})
    drifts = [state.reconcile(snap, NOW, state.seq) for _ in range(4)]
    assert drifts == [0, 0, 0, 0]
    assert len(state.loaded) == 2
    assert state.series_dropped()["opta_lmx_model_loaded"] >= 2


def test_disagrees_is_read_only_and_honours_the_race_guard() -> None:
    state = LmxState()
    assert not state.disagrees(Snapshot(models={"a": 1.0}), 0)  # nothing synced yet
    state.reconcile(Snapshot(models={"a": 1.0}), 0.0, state.seq)
    assert not state.disagrees(Snapshot(models={"a": 1.0}), state.seq)
    assert state.disagrees(Snapshot(models={}), state.seq)
    assert state.disagrees(Snapshot(models={"a": 1.0, "b": 1.0}), state.seq)
    since = state.seq
    from opta_exporter.core.ingest import ingest

    ingest(state, "model_loaded", '{"model_id": "b"}', 0.0)  # newer than the snapshot
    assert not state.disagrees(Snapshot(models={"a": 1.0}), since)
    assert set(state.loaded) == {"a", "b"}


def test_models_read_fills_and_repairs_readiness_but_never_overrules_a_newer_event() -> None:
    state = LmxState()
    state.reconcile(example_snapshot({"a": 1.0, "b": 1.0, "c": 1.0}), 0.0, state.seq)
    state.readiness["b"] = "loading"  # as an event left it; a later one was lost
    since = state.seq
    apply_ok(state, "model_readiness_changed", {"model_id": "c", "state": "canary_pending"})
    drift = state.reconcile_readiness(
        {"a": "routable", "b": "routable", "c": "routable", "gone": "routable"}, since
    )
    assert state.readiness == {"a": "routable", "b": "routable", "c": "canary_pending"}
    assert drift == 1  # b disagreed; a had no state yet (loaded before we started)
    assert state.state_drift == 1
    assert "gone" not in state.readiness  # not loaded: a read never adds a model
    assert state.reconcile_readiness({"a": "routable"}, state.seq) == 0


def test_unloading_forgets_the_readiness_order_mark() -> None:
    state = LmxState()
    apply_ok(state, "model_loaded", {"model_id": "a"})
    apply_ok(state, "model_readiness_changed", {"model_id": "a", "state": "routable"})
    assert "a" in state.readiness_seq
    apply_ok(state, "model_unloaded", {"model_id": "a", "reason": "ttl"})
    assert "a" not in state.readiness_seq


def test_formats_from_diagnostics_replace_unknown_for_loaded_models_only() -> None:
    state = LmxState()
    state.reconcile(example_snapshot({"a": 1.0}), 0.0, state.seq)
    assert state.loaded == {"a": "unknown"}
    state.apply_formats({"a": "gguf", "not-loaded": "mlx"})
    assert state.loaded == {"a": "gguf"}


def test_reads_before_the_first_snapshot_give_its_models_format_and_readiness_at_once() -> None:
    # the polled sources run on their own: diagnostics and /admin/models may answer
    # before the first snapshot has said which models are loaded
    state = LmxState()
    state.apply_formats({"a": "gguf"})
    state.reconcile_readiness({"a": "routable", "b": "loading"}, state.seq)
    assert state.loaded == {}
    assert state.readiness == {}
    state.reconcile(example_snapshot({"a": 1.0, "b": 1.0}), 0.0, state.seq)
    assert state.loaded == {"a": "gguf", "b": "unknown"}  # b: no diagnostics entry
    assert state.readiness == {"a": "routable", "b": "loading"}
    assert state.state_drift == 0


def test_listed_readiness_never_overrules_an_event_for_a_model_added_later() -> None:
    state = LmxState()
    state.reconcile_readiness({"a": "loading"}, state.seq)
    apply_ok(state, "model_loaded", {"model_id": "a", "format": "mlx"})
    apply_ok(state, "model_readiness_changed", {"model_id": "a", "state": "routable"})
    state.reconcile(example_snapshot({"a": 1.0}), 0.0, state.seq)
    assert state.readiness == {"a": "routable"}
    assert state.loaded == {"a": "mlx"}
