"""Bodies of LMX's polled admin reads -> typed readings, tolerant of LMX's variations.

Pure: the readers (readers/) fetch, this reads. A field of the wrong type is absent,
never zero: a malformed body must not make a figure lie.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GIB = 1024.0**3
HEALTH_STATUSES = ("ok", "degraded")
METAL_KINDS = ("active", "peak", "cache")


def real(value: object) -> float | None:
    """A JSON number as a finite float; anything else is absent. An integer too large for
    a float (JSON has no limit: `1` and 400 zeros) is absent too, not an OverflowError."""
    if type(value) is bool or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def percent(value: object) -> float | None:
    """A 0-100 figure as a 0-1 ratio; anything else (bool, NaN, out of range) is absent."""
    number = real(value)
    return None if number is None or not 0 <= number <= 100 else number / 100.0


def gib_bytes(value: object) -> float | None:
    number = real(value)
    if number is None or number < 0 or not math.isfinite(number * GIB):
        return None
    return number * GIB


@dataclass(frozen=True)
class HealthReading:
    """/admin/health: the one admin read LMX answers while it sheds load."""

    status: str | None = None  # one of HEALTH_STATUSES, else None
    memory_usage_ratio: float | None = None
    metal_bytes: Mapping[str, float] = field(default_factory=dict)  # empty off Apple silicon


def parse_health(body: Mapping[str, Any]) -> HealthReading:
    status = body.get("status")
    metal = body.get("metal")
    metal_bytes: dict[str, float] = {}
    if isinstance(metal, dict):
        for kind in METAL_KINDS:
            value = gib_bytes(metal.get(f"{kind}_memory_gb"))
            if value is not None:
                metal_bytes[kind] = value
    return HealthReading(
        status=status if status in HEALTH_STATUSES else None,
        memory_usage_ratio=percent(body.get("memory_usage_percent")),
        metal_bytes=metal_bytes,
    )


VERDICTS = ("healthy", "degraded", "critical")
AGENT_OUTCOMES = ("completed", "failed")


def count(value: object) -> float | None:
    """A non-negative count; anything else is absent."""
    number = real(value)
    return number if number is not None and number >= 0 else None


def _object(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class DiagnosticsReading:
    """/admin/diagnostics: LMX's own verdicts and counts, and each model's load format."""

    crash_loop: bool | None = None
    quarantined: float | None = None
    verdict: str | None = None  # one of VERDICTS, else None
    agents_active: float | None = None
    agents_finished: Mapping[str, float] = field(default_factory=dict)  # by AGENT_OUTCOMES
    formats: Mapping[str, str] = field(default_factory=dict)  # model id -> mlx | gguf


def parse_diagnostics(body: Mapping[str, Any], formats: frozenset[str]) -> DiagnosticsReading:
    crash_loop = _object(body, "system").get("crash_loop_detected")
    models = _object(body, "models")
    agents = _object(body, "agents")
    verdict = body.get("health_verdict")
    finished = {
        outcome: value
        for outcome in AGENT_OUTCOMES
        if (value := count(agents.get(f"{outcome}_runs"))) is not None
    }
    listed = models.get("models")
    found = {
        entry["id"]: entry["backend_type"]
        for entry in (listed if isinstance(listed, list) else [])
        if isinstance(entry, dict)
        and isinstance(entry.get("id"), str)
        and entry.get("backend_type") in formats
    }
    return DiagnosticsReading(
        crash_loop=crash_loop if isinstance(crash_loop, bool) else None,
        quarantined=count(models.get("quarantined_count")),
        verdict=verdict if verdict in VERDICTS else None,
        agents_active=count(agents.get("active_runs")),
        agents_finished=finished,
        formats=found,
    )


def parse_models(body: Mapping[str, Any], states: tuple[str, ...]) -> dict[str, str]:
    """/admin/models: the readiness state of every loaded model (its crash_count is
    always 0 there, so it is not read: crash counts come from readiness events)."""
    listed = body.get("loaded")
    readiness: dict[str, str] = {}
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        state = _object(entry, "readiness").get("state")
        if state in states:
            readiness[entry["id"]] = state
    return readiness


QUANTIZE_STATUSES = ("queued", "running", "cancelling", "completed", "failed", "cancelled")


@dataclass(frozen=True)
class Download:
    """One running download, as /admin/models/downloads lists it."""

    repo: str
    progress_ratio: float | None
    downloaded_bytes: float | None
    total_bytes: float | None


def parse_downloads(body: Mapping[str, Any]) -> tuple[Download, ...]:
    """Running downloads only (LMX lists only active ones by default; a finished one that
    slips in says nothing about progress)."""
    listed = body.get("downloads")
    found = []
    for entry in listed if isinstance(listed, list) else []:
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("repo_id"), str)
            and entry.get("status") == "downloading"
        ):
            found.append(
                Download(
                    entry["repo_id"],
                    percent(entry.get("progress_percent")),
                    count(entry.get("downloaded_bytes")),
                    count(entry.get("total_bytes")),
                )
            )
    return tuple(found)


def parse_quantize(body: Mapping[str, Any]) -> dict[str, float]:
    """Jobs LMX lists (finished ones included), counted by status; `pending` is LMX's
    name for a job not yet queued, anything unknown is `other`."""
    listed = body.get("jobs")
    jobs = dict.fromkeys(QUANTIZE_STATUSES, 0.0)
    for entry in listed if isinstance(listed, list) else []:
        status = entry.get("status") if isinstance(entry, dict) else None
        status = "queued" if status == "pending" else status
        key = status if status in QUANTIZE_STATUSES else "other"
        jobs[key] = jobs.get(key, 0.0) + 1
    return jobs


def jobs_active(jobs: Mapping[str, float]) -> bool:
    """A quantize job is queued, running or being cancelled: worth reading often."""
    return any(jobs.get(status) for status in ("queued", "running", "cancelling"))
