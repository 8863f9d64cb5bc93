"""Label values (core/labels.py), through ingest(): free text normalised to fixed label sets,
the open sets that stay few, and the model cardinality cap."""

from __future__ import annotations

import pytest

from opta_exporter.core.labels import MAX_LABEL_CHARS, ModelCap
from opta_exporter.core.state import GIB, MODEL_GAUGES, LmxState
from tests.unit.core.feeding import NOW, M, apply_ok, load, read_tokens

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
        assert sum(state.quantize_jobs.values()) == 0
    else:
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


def test_a_refused_model_still_counts_where_no_model_label_is() -> None:
    """The load-duration histogram is by format and the throughput window has no label at
    all: a model the cap refuses still feeds both."""
    state = LmxState(max_models=1)
    apply_ok(state, "model_loaded", {"model_id": "a", "format": "mlx", "duration_sec": 2.0})
    apply_ok(state, "model_loaded", {"model_id": "b", "format": "mlx", "duration_sec": 3.0})
    read_tokens(state, 0.0, 100.0)
    read_tokens(state, 10.0, 400.0)
    assert state.loads == {("a", "mlx"): 1.0}
    assert state.series_dropped()["opta_lmx_model_loads_total"] == 1.0
    series = state.load_duration.series[("mlx",)]
    assert (sum(series.counts), series.total) == (2, 5.0)
    assert [rate for _, rate in state.throughput.window.samples(NOW + 10.0)] == [30.0]


@pytest.mark.parametrize(
    ("length", "admitted"), [(MAX_LABEL_CHARS, True), (MAX_LABEL_CHARS + 1, False), (5000, False)]
)
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
    apply_ok(
        state,
        "model_readiness_changed",
        {"model_id": model, "state": "routable", "crash_count": 3},
    )
    assert state.loaded == {model: "mlx"}
    assert state.model_memory == {model: 2 * GIB}
    assert state.readiness == {model: "routable"}
    assert state.crashes == {model: 3.0}
    assert state.loads == {(model, "mlx"): 1.0}
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
    for metric in MODEL_GAUGES:
        assert metric not in dropped


def test_metric_names_from_outside_are_bounded_too() -> None:
    """The relay keys its cap by LMX's family names: a body with new names on every read
    must not grow the cap without end."""
    cap = ModelCap(2, max_metrics=3)
    for i in range(3):
        assert cap.admit(f"lmx_family_{i}_total", "m")
    assert not cap.admit("lmx_family_3_total", "m")
    assert not cap.admit("lmx_family_4_total", "m")
    assert cap.dropped == {"other": 2}  # one key, however many names were refused
    assert cap.admit("lmx_family_0_total", "n")  # known names go on as before
    assert cap.clone().max_metrics == 3
