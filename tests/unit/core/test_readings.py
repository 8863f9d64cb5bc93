"""parse_health (core/readings.py): /admin/health as LMX answers it, and as it should not."""

from __future__ import annotations

from typing import Any

import pytest

from opta_exporter.core.labels import FORMATS, READINESS_STATES
from opta_exporter.core.readings import (
    GIB,
    DiagnosticsReading,
    Download,
    HealthReading,
    gib_bytes,
    jobs_active,
    parse_diagnostics,
    parse_downloads,
    parse_health,
    parse_models,
    parse_quantize,
    percent,
)

# /admin/health on a Mac, and off Apple silicon (metal null), as LMX answers
ON_A_MAC = {
    "status": "ok",
    "version": "0.1.0",
    "reason": None,
    "memory_usage_percent": 12.5,
    "metal": {"active_memory_gb": 8.0, "peak_memory_gb": 10.5, "cache_memory_gb": 0.5},
    "helpers": {},
    "models_loaded": 2,
    "in_flight_requests": 0,
}
SHEDDING = {
    "status": "degraded",
    "version": "0.1.0",
    "reason": "Memory at 97.0% — approaching OOM threshold",
    "memory_usage_percent": 97.0,
    "metal": None,
    "helpers": {},
    "models_loaded": 2,
    "in_flight_requests": 0,
}


def test_a_mac_reports_status_usage_and_metal_in_bytes() -> None:
    assert parse_health(ON_A_MAC) == HealthReading(
        status="ok",
        memory_usage_ratio=0.125,
        metal_bytes={"active": 8.0 * GIB, "peak": 10.5 * GIB, "cache": 0.5 * GIB},
    )


def test_no_metal_means_no_metal_figures() -> None:
    assert parse_health(SHEDDING) == HealthReading("degraded", 0.97, {})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, HealthReading()),
        ({"status": "on fire"}, HealthReading()),  # not a status LMX has: no one-hot
        ({"memory_usage_percent": "97"}, HealthReading()),
        ({"memory_usage_percent": True}, HealthReading()),
        ({"memory_usage_percent": float("nan")}, HealthReading()),
        ({"memory_usage_percent": 120}, HealthReading()),
        ({"memory_usage_percent": -1}, HealthReading()),
        ({"memory_usage_percent": 0}, HealthReading(memory_usage_ratio=0.0)),
        ({"metal": []}, HealthReading()),
        ({"metal": {"active_memory_gb": "8"}}, HealthReading()),
        (
            {"metal": {"active_memory_gb": -1, "peak_memory_gb": 2}},
            HealthReading(None, None, {"peak": 2 * GIB}),
        ),
    ],
)
def test_a_wrong_field_is_absent_never_zero(body: dict[str, Any], expected: HealthReading) -> None:
    assert parse_health(body) == expected


def test_units() -> None:
    assert percent(50) == 0.5
    assert percent(100.0) == 1.0
    assert gib_bytes(1) == 1024**3
    assert gib_bytes(float("inf")) is None


# /admin/diagnostics and /admin/models with two models loaded, as LMX answers (abridged)
DIAGNOSTICS = {
    "timestamp": 1796398849.1,
    "system": {"memory_percent": 3.1, "uptime_seconds": 37.6, "crash_loop_detected": False},
    "models": {
        "loaded_count": 2,
        "quarantined_count": 0,
        "models": [
            {"id": "/models/a.gguf", "readiness": "routable", "backend_type": "gguf"},
            {"id": "mlx-community/m", "readiness": "loading", "backend_type": "mlx"},
            {"id": "odd", "backend_type": "vllm-mlx"},  # not a load format: ignored
            "not an entry",
        ],
    },
    "agents": {"active_runs": 0, "completed_runs": 3, "failed_runs": 1},
    "recent_errors": [],
    "health_verdict": "healthy",
}
MODELS = {
    "loaded": [
        {"id": "/models/a.gguf", "readiness": {"state": "routable", "crash_count": 0}},
        {"id": "mlx-community/m", "readiness": {"state": "quarantined", "crash_count": 0}},
        {"id": "x", "readiness": {"state": "on fire"}},
        {"id": "y"},
        {"readiness": {"state": "routable"}},
    ],
    "count": 5,
}


def test_diagnostics_verdicts_counts_and_formats() -> None:
    assert parse_diagnostics(DIAGNOSTICS, FORMATS) == DiagnosticsReading(
        crash_loop=False,
        quarantined=0.0,
        verdict="healthy",
        agents_active=0.0,
        agents_finished={"completed": 3.0, "failed": 1.0},
        formats={"/models/a.gguf": "gguf", "mlx-community/m": "mlx"},
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"system": [], "models": "x", "agents": None, "health_verdict": "grim"},
        {"system": {"crash_loop_detected": 1}, "models": {"quarantined_count": -2}},
        {"agents": {"active_runs": True, "completed_runs": "3"}},
    ],
)
def test_diagnostics_of_the_wrong_shape_say_nothing(body: dict[str, Any]) -> None:
    assert parse_diagnostics(body, FORMATS) == DiagnosticsReading()


def test_models_give_every_loaded_models_readiness() -> None:
    assert parse_models(MODELS, READINESS_STATES) == {
        "/models/a.gguf": "routable",
        "mlx-community/m": "quarantined",
    }
    assert parse_models({"loaded": "nope"}, READINESS_STATES) == {}


def test_downloads_running_only_with_progress_and_bytes() -> None:
    body = {
        "downloads": [
            {
                "download_id": "d1",
                "repo_id": "mlx-community/Qwen3-8B-4bit",
                "status": "downloading",
                "progress_percent": 42.5,
                "downloaded_bytes": 1_000,
                "total_bytes": 4_000,
                "error": None,
            },
            {"download_id": "d2", "repo_id": "done/repo", "status": "completed"},
            {"download_id": "d3", "repo_id": 7, "status": "downloading"},
            {"download_id": "d4", "repo_id": "odd", "status": "downloading", "total_bytes": -1},
        ]
    }
    assert parse_downloads(body) == (
        Download("mlx-community/Qwen3-8B-4bit", 0.425, 1000.0, 4000.0),
        Download("odd", None, None, None),
    )
    assert parse_downloads({"downloads": {}}) == ()


def test_quantize_jobs_by_status() -> None:
    body = {
        "jobs": [
            {"job_id": "q1", "status": "running", "queue_position": None},
            {"job_id": "q2", "status": "queued", "queue_position": 1},
            {"job_id": "q3", "status": "pending"},
            {"job_id": "q4", "status": "completed"},
            {"job_id": "q5", "status": "failed: out of memory"},
            "junk",
        ],
        "count": 6,
    }
    jobs = parse_quantize(body)
    assert jobs == {
        "queued": 2.0,
        "running": 1.0,
        "cancelling": 0.0,
        "completed": 1.0,
        "failed": 0.0,
        "cancelled": 0.0,
        "other": 2.0,
    }
    assert jobs_active(jobs)
    assert not jobs_active(parse_quantize({"jobs": [{"status": "completed"}]}))
