"""Per-model bookkeeping in LmxState stays bounded by the model cap (issue 17): 300k
model ids, by events or by polled bodies, with or without a snapshot, used to leave
300k order marks and remembered formats and readiness states behind (+43 MB)."""

from __future__ import annotations

from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.readings import DiagnosticsReading
from opta_exporter.core.state import LmxState
from opta_exporter.store import Store
from tests.fakes import FakeClock
from tests.helpers import example_snapshot

IDS = [f"attacker/model-{i}" for i in range(30_000)]
LIMIT = 64  # what the state keeps at max_models=10: a few times the cap, at least 64


def bookkeeping(state: LmxState) -> dict[str, int]:
    return {
        name: len(table)
        for name, table in vars(state).items()
        if isinstance(table, dict) and name not in ("events", "event_errors", "open_labels")
    }


def test_a_flood_of_model_ids_by_events_leaves_bounded_tables() -> None:
    store = Store(LmxState(max_models=10), ExporterHealth(), FakeClock())
    for model in IDS:  # no snapshot ever succeeds
        store.ingest("model_loaded", f'{{"model_id": "{model}", "memory_gb": 1}}')
        store.ingest("model_unloaded", f'{{"model_id": "{model}", "reason": "lru"}}')
    sizes = bookkeeping(store.state)
    assert max(sizes.values()) <= LIMIT, sizes
    assert store.state.series_dropped()  # the refusals are counted, not hidden


def test_polled_bodies_with_many_ids_leave_bounded_tables() -> None:
    state = LmxState(max_models=10)
    state.reconcile(example_snapshot({"kept/model": 1.0}), 0.0, state.seq)
    formats = dict.fromkeys(IDS, "gguf") | {"kept/model": "mlx"}
    state.apply_formats(formats)
    state.reconcile_readiness(dict.fromkeys(IDS, "routable") | {"kept/model": "canary"}, 0)
    assert len(state.formats) <= LIMIT
    assert len(state.listed_readiness) <= LIMIT
    # a loaded model's entries are kept first, whatever their place in the body
    assert state.formats["kept/model"] == "mlx"
    assert state.loaded["kept/model"] == "mlx"
    assert state.readiness["kept/model"] == "canary"


def test_snapshots_with_many_ids_leave_bounded_tables() -> None:
    state = LmxState(max_models=10)
    for start in range(0, len(IDS), 3_000):
        snap = example_snapshot(dict.fromkeys(IDS[start : start + 3_000], 1.0))
        state.reconcile(snap, 0.0, state.seq)
    assert max(bookkeeping(state).values()) <= LIMIT


def test_the_store_keeps_no_unbounded_copy_of_a_diagnostics_body() -> None:
    store = Store(LmxState(max_models=10), ExporterHealth(), FakeClock())
    store.set_diagnostics(DiagnosticsReading(verdict="healthy", formats=dict.fromkeys(IDS, "mlx")))
    assert store.state.diagnostics is not None
    assert store.state.diagnostics.verdict == "healthy"
    assert not store.state.diagnostics.formats
    assert len(store.state.formats) <= LIMIT


def test_an_order_mark_still_protects_a_recent_event_from_an_older_snapshot() -> None:
    """The bound evicts the oldest marks; the newest, the ones a snapshot races, stay."""
    state = LmxState(max_models=10)
    state.reconcile(example_snapshot({}), 0.0, state.seq)
    since = state.seq
    for model in IDS[:1_000]:
        state.add_model(model, "mlx", None)
        state.seq += 1
        state.remove_model(model)
    state.seq += 1
    state.add_model("fresh/model", "mlx", 1.0)
    assert state.reconcile(example_snapshot({}), 0.0, since) == 0  # not drift
    assert "fresh/model" in state.loaded
