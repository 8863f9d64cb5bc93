"""The JSON documents the LMX stand-in serves, as pure functions of its model state.

Kept apart from simulator.py so the wire shapes (/admin/status, /admin/memory, the
/admin/metrics gauges) read in one place, free of locking and sockets; the simulator takes
a `HostState` under its lock and hands it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

BASE_MEMORY_GB = 2.0  # what LMX itself holds with no model loaded
THRESHOLD_PERCENT = 90
CONTEXT_LENGTH = 32768


@dataclass
class Model:
    """A loaded model. `readiness`/`reason` are its own state as /admin/models shows it;
    request_count and last_used_at count only since this load."""

    fmt: str
    memory_gb: float
    loaded_at: float
    readiness: str = "routable"
    reason: str | None = None
    request_count: int = 0
    last_used_at: float | None = None


@dataclass(frozen=True)
class HostState:
    """What every document is built from; uptime_sec is unrounded, each document rounds it."""

    version: str
    total_gb: float
    max_concurrent: int
    models: Mapping[str, Model]
    in_flight: int  # holding a slot: at most max_concurrent
    uptime_sec: float
    memory_percent: float | None = None  # a usage set by a test; None: from the models
    queued: int = 0  # waiting for a slot


def memory_split(state: HostState) -> tuple[float, float]:
    """(used, available) in GB, each rounded to 2 places as LMX reports them."""
    if state.memory_percent is None:
        used = BASE_MEMORY_GB + sum(m.memory_gb for m in state.models.values())
    else:
        used = state.total_gb * state.memory_percent / 100.0
    return round(used, 2), round(state.total_gb - round(used, 2), 2)


def metal_active_gb(models: Mapping[str, Model]) -> float:
    """What MLX's Metal allocator holds: the MLX-format models (llama.cpp has its own)."""
    return sum(m.memory_gb for m in models.values() if m.fmt == "mlx")


def usage_percent(state: HostState) -> float:
    """Unrounded usage: what LMX's memory monitor compares with its thresholds."""
    if state.memory_percent is not None:
        return state.memory_percent
    return 100.0 * memory_split(state)[0] / state.total_gb


def status_document(state: HostState) -> dict[str, object]:
    """/admin/status."""
    used, available = memory_split(state)
    return {
        "version": state.version,
        "uptime_seconds": round(state.uptime_sec, 1),
        "loaded_models": len(state.models),
        "models": list(state.models),
        "memory": {
            "total_gb": state.total_gb,
            "used_gb": used,
            "available_gb": available,
            "usage_percent": round(usage_percent(state), 1),
            "threshold_percent": THRESHOLD_PERCENT,
        },
        "in_flight_requests": state.in_flight,
        "max_concurrent_requests": state.max_concurrent,
    }


def memory_document(state: HostState) -> dict[str, object]:
    """/admin/memory."""
    used, available = memory_split(state)
    return {
        "total_unified_memory_gb": state.total_gb,
        "used_gb": used,
        "available_gb": available,
        "threshold_percent": THRESHOLD_PERCENT,
        "models": {
            mid: {"memory_gb": m.memory_gb, "loaded": True} for mid, m in state.models.items()
        },
    }


def metrics_gauges(state: HostState) -> dict[str, float]:
    """The unlabelled gauges /admin/metrics prints after the request counters."""
    return {
        "uptime_seconds": round(state.uptime_sec, 3),
        "loaded_models": len(state.models),
        "memory_used_gb": memory_split(state)[0],
        "memory_total_gb": state.total_gb,
        "in_flight_requests": state.in_flight,
        "concurrent_limit": state.max_concurrent,
        "queued_requests": state.queued,
    }
