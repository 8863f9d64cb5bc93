"""The LMX stand-in against real sockets: LMX's other admin reads (lmx_simulator/
admin_docs.py, conditions.py, routes.py) -- each body in LMX's captured shape, the key check,
the open probes, the percent-encoded performance route, and bodies that follow the state."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import requests

from lmx_simulator import LmxSimulator
from tests.unit.lmx_simulator import shapes
from tests.unit.lmx_simulator.harness import Harness

KEY = "s3cret"
ODD_ID = '/models/we"ird\\x.gguf'
MLX_ID = "mlx-community/Qwen3-8B-4bit"
NEW_ADMIN_READS = (
    "/admin/health",
    "/admin/models",
    "/admin/diagnostics",
    "/admin/models/downloads",
    "/admin/models/downloads?include_inactive=true",
    "/admin/quantize",
    "/admin/metrics/json",
    f"/admin/models/{quote(MLX_ID, safe='')}/performance",
)


def get(sim: LmxSimulator, path: str, key: str | None = KEY) -> requests.Response:
    headers = {"X-Admin-Key": key} if key is not None else {}
    return requests.get(sim.url + path, headers=headers, timeout=3)


def body(sim: LmxSimulator, path: str) -> Any:
    r = get(sim, path)
    assert r.status_code == 200, (path, r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def busy(h: Harness, **kwargs: Any) -> LmxSimulator:
    """Two models loaded (one GGUF with an awkward id), three requests served by one."""
    sim = h.sim(admin_key=KEY, **kwargs)
    sim.load_model(MLX_ID, fmt="mlx", memory_gb=4.6)
    sim.load_model(ODD_ID, fmt="gguf", memory_gb=7.9, emit=False)
    for _ in range(3):
        sim.record_request(MLX_ID, latency_sec=0.2, prompt_tokens=5, completion_tokens=1)
    return sim


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/admin/health", shapes.HEALTH),
        ("/admin/models", shapes.MODELS),
        ("/admin/diagnostics", shapes.DIAGNOSTICS),
        ("/admin/metrics/json", shapes.METRICS_JSON),
        ("/admin/quantize", shapes.QUANTIZE),
        ("/admin/models/downloads", {"downloads": [shapes.DOWNLOAD]}),
        (f"/admin/models/{quote(ODD_ID, safe='')}/performance", shapes.PERFORMANCE),
    ],
)
def test_each_read_has_lmx_captured_shape(h: Harness, path: str, shape: Any) -> None:
    sim = busy(h)
    sim.start_download("org/repo")
    sim.start_quantize(MLX_ID)
    shapes.assert_shape(body(sim, path), shape)


def test_new_admin_reads_ask_for_the_key_as_the_others_do(h: Harness) -> None:
    sim = busy(h)
    for path in NEW_ADMIN_READS:
        for key in (None, "wrong"):
            r = get(sim, path, key)
            assert (r.status_code, r.json()) == (403, {"detail": "Invalid or missing admin key"})
        assert (
            get(sim, f"{path}{'&' if '?' in path else '?'}admin_key={KEY}", None).status_code == 403
        )
        assert get(sim, path).status_code == 200
        assert (
            requests.post(sim.url + path, headers={"X-Admin-Key": KEY}, timeout=3).status_code
            == 405
        )


def test_open_probes_need_no_key(h: Harness) -> None:
    sim = h.sim(admin_key=KEY)
    assert get(sim, "/healthz", None).json() == {"status": "ok", "version": "0.1.0"}
    not_ready = get(sim, "/readyz?verbose=1", None)
    assert (not_ready.status_code, not_ready.json()) == (
        503,
        {"status": "unavailable", "reason": "no models loaded"},
    )
    sim.load_model("m", emit=False)
    ready = get(sim, "/readyz", None)
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "version": "0.1.0", "models_loaded": 1},
    )


def test_performance_route_takes_the_percent_encoded_id(h: Harness) -> None:
    sim = busy(h, max_concurrent_requests=2)
    doc = body(sim, f"/admin/models/{quote(ODD_ID, safe='')}/performance")
    assert (doc["model_id"], doc["backend_type"], doc["memory_gb"]) == (ODD_ID, "gguf", 7.9)
    assert doc["global_defaults"]["max_concurrent_requests"] == 2
    mlx = body(sim, f"/admin/models/{quote(MLX_ID, safe='')}/performance")
    assert (mlx["backend_type"], mlx["request_count"]) == ("mlx", 3)
    assert mlx["last_used_at"] >= mlx["loaded_at"]
    for path, named in (
        ("/admin/models/%2Fmodels%2Fnope.gguf/performance", "/models/nope.gguf"),
        ("/admin/models/models/we%22ird%5Cx.gguf/performance", 'models/we"ird\\x.gguf'),
    ):
        r = get(sim, path)
        assert r.status_code == 404
        shapes.assert_shape(r.json(), shapes.MODEL_NOT_FOUND)
        assert r.json()["error"] == {
            "message": f"The model '{named}' does not exist or is not loaded",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }


def test_models_and_diagnostics_follow_loads_and_unloads(h: Harness) -> None:
    sim = busy(h)
    models = body(sim, "/admin/models")
    assert models["count"] == 2
    by_id = {entry["id"]: entry for entry in models["loaded"]}
    assert set(by_id) == {MLX_ID, ODD_ID}
    assert by_id[MLX_ID]["request_count"] == 3
    assert by_id[ODD_ID]["readiness"] == {"state": "routable", "reason": None, "crash_count": 0}
    diagnostics = body(sim, "/admin/diagnostics")
    listed = {m["id"]: m for m in diagnostics["models"]["models"]}
    assert {mid: m["backend_type"] for mid, m in listed.items()} == {MLX_ID: "mlx", ODD_ID: "gguf"}
    assert listed[ODD_ID]["memory_gb"] == 7.9
    assert listed[MLX_ID]["requests_total"] == 3
    assert diagnostics["inference"] == {
        "total_requests": 3,
        "active_requests": 0,
        "avg_latency_ms": 200.0,
        "error_rate_pct": 0.0,
        "tokens_generated": 3,
        "total_tokens_processed": 18,
    }
    assert diagnostics["health_verdict"] == "healthy"
    sim.unload_model(MLX_ID)
    sim.load_model("new/one", fmt="gguf", memory_gb=1.0)
    assert [m["id"] for m in body(sim, "/admin/models")["loaded"]] == [ODD_ID, "new/one"]
    after = body(sim, "/admin/diagnostics")["models"]
    assert (after["loaded_count"], after["models"][1]["backend_type"]) == (2, "gguf")


def test_memory_usage_agrees_across_every_read(h: Harness) -> None:
    sim = busy(h, memory_total_gb=100.0)
    sim.set_memory_usage(91.3)
    status = body(sim, "/admin/status")["memory"]
    assert (status["usage_percent"], status["used_gb"], status["available_gb"]) == (91.3, 91.3, 8.7)
    assert body(sim, "/admin/memory")["used_gb"] == 91.3
    health = body(sim, "/admin/health")
    assert (health["status"], health["reason"], health["memory_usage_percent"]) == (
        "ok",
        None,
        91.3,
    )
    system = body(sim, "/admin/diagnostics")["system"]
    assert (system["memory_percent"], system["memory_gb_used"], system["memory_gb_total"]) == (
        91.3,
        91.3,
        100.0,
    )
    assert body(sim, "/admin/diagnostics")["health_verdict"] == "degraded"  # from 90 %
    assert "lmx_memory_used_gb 91.3" in get(sim, "/admin/metrics").text.splitlines()
    sim.set_memory_usage(None)
    assert body(sim, "/admin/status")["memory"]["used_gb"] == 14.5  # 2 GB + the two models


def test_health_degrades_only_above_95_percent(h: Harness) -> None:
    sim = h.sim(admin_key=KEY, load_shedding_percent=99.0)
    for percent, status in ((95.0, "ok"), (95.1, "degraded")):
        sim.set_memory_usage(percent)
        health = body(sim, "/admin/health")
        assert health["status"] == status
    assert health["reason"] == "Memory at 95.1% — approaching OOM threshold"


def test_metal_figures_or_null(h: Harness) -> None:
    sim = busy(h)
    metal = body(sim, "/admin/health")["metal"]
    assert metal == {"active_memory_gb": 4.6, "peak_memory_gb": 4.6, "cache_memory_gb": 0.0}
    sim.unload_model(MLX_ID)
    sim.set_metal(True, cache_gb=1.25)
    metal = body(sim, "/admin/health")["metal"]
    assert metal == {"active_memory_gb": 0.0, "peak_memory_gb": 4.6, "cache_memory_gb": 1.25}
    sim.set_metal(False)
    assert body(sim, "/admin/health")["metal"] is None
    off_mac = h.sim(admin_key=KEY, metal=False)
    shapes.assert_shape(body(off_mac, "/admin/health"), shapes.HEALTH | {"metal": type(None)})


def test_metrics_json_counts_models_that_served_and_clients_that_said_who(h: Harness) -> None:
    sim = busy(h)
    sim.record_request(ODD_ID, completion_tokens=4, error=True, stream=True, client_id="cli")
    sim.record_request(ODD_ID, completion_tokens=2, client_id="cli")
    doc = body(sim, "/admin/metrics/json")
    assert doc["per_model"] == {
        MLX_ID: {"requests": 3, "errors": 0, "completion_tokens": 3},
        ODD_ID: {"requests": 2, "errors": 1, "completion_tokens": 6},
    }
    assert doc["per_client"] == {"cli": {"requests": 2, "errors": 1, "completion_tokens": 6}}
    assert (doc["total_requests"], doc["total_errors"], doc["total_stream_requests"]) == (5, 1, 1)
    assert doc["requests"]["throughput_1m"] > 0  # requests per second, not per minute
    assert doc["speculative"]["acceptance_ratio"] is None
    text = get(sim, "/admin/metrics").text.splitlines()
    assert {
        'lmx_client_requests_total{client="cli"} 2',
        'lmx_client_tokens_total{client="cli"} 6',
        'lmx_client_errors_total{client="cli"} 1',
    } <= set(text)


def test_no_client_families_until_a_client_says_who(h: Harness) -> None:
    sim = busy(h)
    assert "lmx_client_" not in get(sim, "/admin/metrics").text
    assert body(sim, "/admin/metrics/json")["per_client"] == {}
    assert set(body(sim, "/admin/metrics/json")["per_model"]) == {MLX_ID}
