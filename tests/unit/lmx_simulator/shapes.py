"""What a real LMX answered on its admin reads, boiled down to structures (key -> type,
nested; a list holds the shape of its entries) that the simulator's bodies must match, and
the checker."""

from __future__ import annotations

from typing import Any

NUMBER = (int, float)
MAYBE_STR = (str, type(None))
MAYBE_NUMBER = (int, float, type(None))
READINESS = {"state": str, "reason": MAYBE_STR, "crash_count": int}
SPECULATIVE = {
    "requested": bool,
    "active": bool,
    "reason": str,
    "draft_model": MAYBE_STR,
    "num_tokens": (int, type(None)),
    "telemetry": str,
}
MODEL_ENTRY = {
    "id": str,
    "loaded": bool,
    "memory_gb": float,
    "loaded_at": float,
    "use_batching": bool,
    "request_count": int,
    "last_used_at": float,
    "context_length": int,
    "performance": dict,
    "speculative": SPECULATIVE,
    "readiness": READINESS,
}
HEALTH = {
    "status": str,
    "version": str,
    "reason": MAYBE_STR,
    "memory_usage_percent": NUMBER,
    "metal": {"active_memory_gb": NUMBER, "peak_memory_gb": NUMBER, "cache_memory_gb": NUMBER},
    "helpers": dict,
    "models_loaded": int,
    "in_flight_requests": int,
}
MODELS = {"loaded": [MODEL_ENTRY], "count": int}
PERFORMANCE = {
    "model_id": str,
    "backend_type": str,
    **{k: MODEL_ENTRY[k] for k in ("loaded_at", "request_count", "last_used_at", "memory_gb")},
    **{k: MODEL_ENTRY[k] for k in ("context_length", "use_batching", "performance")},
    "speculative": SPECULATIVE,
    "readiness": READINESS,
    "global_defaults": {
        "kv_bits": (int, type(None)),
        "kv_group_size": int,
        "quantized_kv_start": (int, type(None)),
        "prefix_cache_enabled": bool,
        "speculative_model": MAYBE_STR,
        "speculative_num_tokens": int,
        "speculative_require_supported": bool,
        "warmup_on_load": bool,
        "stream_interval": int,
        "adaptive": {
            "enabled": bool,
            "latency_target_ms": float,
            "latency_window_size": int,
            "latency_p95_sec": float,
            "min_concurrent_requests": int,
            "last_reason": str,
        },
        "scheduler": {
            "max_num_seqs": int,
            "prefill_batch_size": int,
            "completion_batch_size": int,
            "cache_memory_percent": float,
        },
        "max_concurrent_requests": int,
    },
}
DIAGNOSTICS = {
    "timestamp": float,
    "system": {
        "memory_percent": NUMBER,
        "memory_gb_used": NUMBER,
        "memory_gb_total": NUMBER,
        "uptime_seconds": NUMBER,
        "python_version": str,
        "crash_loop_detected": bool,
    },
    "models": {
        "loaded_count": int,
        "quarantined_count": int,
        "models": [
            {
                "id": str,
                "readiness": str,
                "loaded_at": float,
                "requests_total": int,
                "backend_type": str,
                "memory_gb": NUMBER,
            }
        ],
    },
    "inference": {
        "total_requests": int,
        "active_requests": int,
        "avg_latency_ms": float,
        "error_rate_pct": float,
        "tokens_generated": int,
        "total_tokens_processed": int,
    },
    "agents": {"active_runs": int, "completed_runs": int, "failed_runs": int},
    "recent_errors": list,
    "health_verdict": str,
}
DOWNLOAD = {
    "download_id": str,
    "repo_id": str,
    "status": str,
    "progress_percent": float,
    "downloaded_bytes": int,
    "total_bytes": int,
    "files_completed": int,
    "files_total": int,
    "error": MAYBE_STR,
    "error_code": MAYBE_STR,
    "started_at": float,
    "completed_at": (float, type(None)),
}
QUANTIZE = {
    "jobs": [
        {
            "job_id": str,
            "source_model": str,
            "bits": int,
            "group_size": int,
            "mode": str,
            "status": str,
            "started_at": float,
            "queue_position": (int, type(None)),
        }
    ],
    "count": int,
}
COUNTS = {"requests": int, "errors": int, "completion_tokens": int}
METRICS_JSON = {
    "total_requests": int,
    "total_errors": int,
    "total_stream_requests": int,
    "total_prompt_tokens": int,
    "total_completion_tokens": int,
    "requests": {"total": int, "errors": int, "stream_total": int, "throughput_1m": NUMBER},
    "tokens": {"prompt_total": int, "completion_total": int},
    "speculative": {
        "accepted_tokens": int,
        "rejected_tokens": int,
        "ignored_tokens": int,
        "acceptance_ratio": MAYBE_NUMBER,
    },
    "per_model": dict,
    "uptime_seconds": NUMBER,
    "per_client": dict,
    "schema_version": str,
}
MODEL_NOT_FOUND = {
    "error": {"message": str, "type": str, "param": str, "code": str},
}


def assert_shape(doc: Any, shape: Any, where: str = "body") -> None:
    """`doc` has exactly the keys of `shape`, each of the type it names (bool is not an
    int here, as a JSON reader would not take `true` for a count)."""
    if isinstance(shape, dict):
        assert isinstance(doc, dict), f"{where}: {doc!r} is not an object"
        assert set(doc) == set(shape), f"{where}: keys {sorted(doc)} != {sorted(shape)}"
        for key, inner in shape.items():
            assert_shape(doc[key], inner, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(doc, list), f"{where}: {doc!r} is not a list"
        for i, entry in enumerate(doc):
            assert_shape(entry, shape[0], f"{where}[{i}]")
    else:
        types = shape if isinstance(shape, tuple) else (shape,)
        assert isinstance(doc, types), f"{where}: {doc!r} is not {types}"
        assert bool in types or not isinstance(doc, bool), f"{where}: {doc!r} is a bool"
