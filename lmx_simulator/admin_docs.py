"""The JSON bodies of LMX's other admin reads, as pure functions of the stand-in's state.

Kept apart from docs.py (/admin/status and /admin/memory) so each body's keys, their order
and LMX's rounding read in one place; the callers hold the simulator's Condition.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass

from lmx_simulator.docs import (
    CONTEXT_LENGTH,
    THRESHOLD_PERCENT,
    HostState,
    Model,
    memory_split,
    usage_percent,
)
from lmx_simulator.metrics import RequestCounters

HEALTH_DEGRADED_ABOVE = 95.0  # LMX hard-codes it: strictly above, whatever the shedding line
ERROR_RATE_CRITICAL_PCT = 5.0
SHED_BODY = {
    "error": {
        "message": "Server under memory pressure",
        "type": "server_error",
        "code": "overloaded",
    }
}
SPECULATIVE_OFF = {
    "requested": False,
    "active": False,
    "reason": "not_requested",
    "draft_model": None,
    "num_tokens": None,
    "telemetry": "unavailable",
}
GLOBAL_DEFAULTS: dict[str, object] = {
    "kv_bits": None,
    "kv_group_size": 64,
    "quantized_kv_start": None,
    "prefix_cache_enabled": True,
    "speculative_model": None,
    "speculative_num_tokens": 5,
    "speculative_require_supported": False,
    "warmup_on_load": True,
    "stream_interval": 1,
    "adaptive": {
        "enabled": True,
        "latency_target_ms": 2500.0,
        "latency_window_size": 128,
        "latency_p95_sec": 0.0,
        "min_concurrent_requests": 1,
        "last_reason": "memory",
    },
    "scheduler": {
        "max_num_seqs": 256,
        "prefill_batch_size": 8,
        "completion_batch_size": 32,
        "cache_memory_percent": 0.2,
    },
}


@dataclass(frozen=True)
class Metal:
    """Metal's allocator figures in GB; None on a host without MLX (health then says null)."""

    active_gb: float
    peak_gb: float
    cache_gb: float


def model_not_found(model_id: str) -> dict[str, object]:
    return {
        "error": {
            "message": f"The model '{model_id}' does not exist or is not loaded",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def healthz_document(state: HostState) -> dict[str, object]:
    return {"status": "ok", "version": state.version}


def readyz_document(state: HostState) -> tuple[int, dict[str, object]]:
    if not state.models:
        return 503, {"status": "unavailable", "reason": "no models loaded"}
    return 200, {"status": "ready", "version": state.version, "models_loaded": len(state.models)}


def health_document(state: HostState, metal: Metal | None) -> dict[str, object]:
    """/admin/health: degraded only strictly above 95 %, the one rule it has for memory."""
    usage = usage_percent(state)
    degraded = usage > HEALTH_DEGRADED_ABOVE
    return {
        "status": "degraded" if degraded else "ok",
        "version": state.version,
        "reason": f"Memory at {usage:.1f}% — approaching OOM threshold" if degraded else None,
        "memory_usage_percent": round(usage, 1),
        "metal": None
        if metal is None
        else {
            "active_memory_gb": round(metal.active_gb, 2),
            "peak_memory_gb": round(metal.peak_gb, 2),
            "cache_memory_gb": round(metal.cache_gb, 2),
        },
        "helpers": {},
        "models_loaded": len(state.models),
        "in_flight_requests": state.in_flight,
    }


def _readiness(model: Model) -> dict[str, object]:
    """crash_count comes from an attribute LMX never assigns, so it is always 0 here."""
    return {"state": model.readiness, "reason": model.reason, "crash_count": 0}


def model_entry(model_id: str, model: Model) -> dict[str, object]:
    """One entry of /admin/models."""
    return {
        "id": model_id,
        "loaded": True,
        "memory_gb": float(model.memory_gb),
        "loaded_at": model.loaded_at,
        "use_batching": False,
        "request_count": model.request_count,
        "last_used_at": model.last_used_at or model.loaded_at,
        "context_length": CONTEXT_LENGTH,
        "performance": {},
        "speculative": dict(SPECULATIVE_OFF),
        "readiness": _readiness(model),
    }


def models_document(state: HostState) -> dict[str, object]:
    loaded = [model_entry(mid, m) for mid, m in state.models.items()]
    return {"loaded": loaded, "count": len(loaded)}


def performance_document(state: HostState, model_id: str) -> tuple[int, dict[str, object]]:
    """/admin/models/{id}/performance: the entry renamed and reordered, plus the load
    format as `backend_type` and the engine's defaults."""
    model = state.models.get(model_id)
    if model is None:
        return 404, model_not_found(model_id)
    entry = model_entry(model_id, model)
    return 200, {
        "model_id": model_id,
        "backend_type": model.fmt,
        **{k: entry[k] for k in ("loaded_at", "request_count", "last_used_at", "memory_gb")},
        **{k: entry[k] for k in ("context_length", "use_batching", "performance")},
        "speculative": entry["speculative"],
        "readiness": entry["readiness"],
        "global_defaults": GLOBAL_DEFAULTS | {"max_concurrent_requests": state.max_concurrent},
    }


def _inference(state: HostState, counters: RequestCounters) -> dict[str, object]:
    totals = counters.totals
    requests = totals["requests"]
    return {
        "total_requests": requests,
        "active_requests": state.in_flight,
        "avg_latency_ms": round(counters.latency_sum() / requests * 1000, 1) if requests else 0.0,
        "error_rate_pct": round(totals["errors"] / requests * 100, 2) if requests else 0.0,
        "tokens_generated": totals["completion_tokens"],
        "total_tokens_processed": totals["completion_tokens"] + totals["prompt_tokens"],
    }


def diagnostics_document(
    state: HostState,
    counters: RequestCounters,
    tracker: Mapping[str, str],
    crash_loop: bool,
    agents: Mapping[str, int],
) -> dict[str, object]:
    """/admin/diagnostics. Readiness comes from LMX's tracker, not the model entry, and
    the verdict has its own rules: critical on a crash loop or > 5 % errors, degraded
    from the admission threshold (90 %) or any quarantined model."""
    used, _ = memory_split(state)
    quarantined = sum(1 for s in tracker.values() if s == "quarantined")
    inference = _inference(state, counters)
    error_rate = inference["error_rate_pct"]
    assert isinstance(error_rate, float)
    if crash_loop or error_rate > ERROR_RATE_CRITICAL_PCT:
        verdict = "critical"
    elif usage_percent(state) >= THRESHOLD_PERCENT or quarantined:
        verdict = "degraded"
    else:
        verdict = "healthy"
    return {
        "timestamp": time.time(),
        "system": {
            "memory_percent": round(usage_percent(state), 1),
            "memory_gb_used": used,
            "memory_gb_total": round(state.total_gb, 2),
            "uptime_seconds": round(state.uptime_sec, 1),
            "python_version": platform.python_version(),
            "crash_loop_detected": crash_loop,
        },
        "models": {
            "loaded_count": len(state.models),
            "quarantined_count": quarantined,
            "models": [
                {
                    "id": mid,
                    "readiness": tracker.get(mid, "unknown"),
                    "loaded_at": m.loaded_at,
                    "requests_total": m.request_count,
                    "backend_type": m.fmt,
                    "memory_gb": round(m.memory_gb, 2),
                }
                for mid, m in state.models.items()
            ],
        },
        "inference": inference,
        "agents": {f"{k}_runs": agents.get(k, 0) for k in ("active", "completed", "failed")},
        "recent_errors": [],
        "health_verdict": verdict,
    }
