"""/api/live's JSON: one LMX at a glance, for the live page (docs/live-api.md).

Built from the same `tables()` /metrics is written from, and the relay's same view, so
every figure here is the one /metrics shows at that moment, and a figure /metrics leaves
out (a stale source) is null here. Pure: no socket, lock or clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opta_exporter.core.histogram import HistogramFamily
from opta_exporter.core.window import Sample as WindowSample
from opta_exporter.metrics.specs import MetricSpec, Sample, Table
from opta_exporter.relay.parse import RelayFamily
from opta_exporter.store import View
from opta_exporter.web.chart import drawn

Tables = Sequence[tuple[MetricSpec, Table]]


def _samples(tables: Tables) -> dict[str, list[Sample]]:
    return {spec.name: list(t) for spec, t in tables if not isinstance(t, HistogramFamily)}


def _one(samples: list[Sample]) -> float | None:
    return samples[0][1] if samples else None


def _chosen(samples: list[Sample]) -> str | None:
    """The label of a one-hot family's sample that is 1 (a state set)."""
    return next((labels[-1] for labels, v in samples if v == 1.0), None)


def _relayed(families: Mapping[str, RelayFamily], name: str) -> float | None:
    """LMX's unlabelled sample `name`, as the relayed text on /metrics has it."""
    family = families.get(name)
    if family is None:
        return None
    return next((s.value for s in family.samples if s.name == name and not s.labels), None)


def _models(t: dict[str, list[Sample]]) -> list[dict[str, Any]]:
    formats = {labels[0]: labels[1] for labels, _ in t["opta_lmx_model_loaded"]}
    memory = {labels[0]: v for labels, v in t["opta_lmx_model_memory_bytes"]}
    readiness = {labels[0]: labels[1] for labels, v in t["opta_lmx_model_readiness"] if v == 1.0}
    crashes = {labels[0]: v for labels, v in t["opta_lmx_model_crashes"]}
    names = sorted(formats.keys() | memory.keys() | readiness.keys() | crashes.keys())
    return [
        {
            "model": name,
            "format": formats.get(name),
            "memory_bytes": memory.get(name),
            "readiness": readiness.get(name),
            "crashes": crashes.get(name),
        }
        for name in names
    ]


def window_samples(view: View) -> list[WindowSample]:
    """The window's samples exactly when /metrics shows the window's statistics."""
    if not view.health.fresh("relay", view.now):
        return []
    return view.state.window.samples(view.wall)


def model_samples(view: View) -> tuple[dict[str, list[WindowSample]], int]:
    """The lines the chart draws, by model id: the MAX_LINES busiest models' own windows
    (from `lmx_model_tokens_total`), when the window itself is shown; and how many models
    have samples in the window. Only the drawn ones travel: at 100 models a document
    with every line would be ~1 MB a second for each viewer."""
    if not view.health.fresh("relay", view.now):
        return {}, 0
    lines = {m: w.samples(view.wall) for m, w in view.state.model_windows.items()}
    lines = {m: samples for m, samples in lines.items() if samples}
    return {m: lines[m] for m in drawn(lines)}, len(lines)


def snapshot(
    view: View,
    tables: Tables,
    relay: Mapping[str, RelayFamily] | None,
    resolution: float | None,
) -> dict[str, Any]:
    """The JSON document. `relay`: the relay's families as /metrics relays them (empty
    when stale, None when the relay is off); `resolution`: seconds between relay reads
    now (None when off)."""
    t = _samples(tables)
    lines, with_samples = model_samples(view)
    families = relay or {}
    health = _chosen(t["opta_lmx_health_status"])
    info = t["opta_lmx_info"]
    successes = t["opta_exporter_source_last_success_timestamp_seconds"]
    last_success = {labels[0]: v for labels, v in successes}
    return {
        "time": view.wall,
        "connection": {
            "state": _chosen(t["opta_exporter_connection_state"]),
            "backoff_seconds": _one(t["opta_exporter_backoff_seconds"]),
            "last_event": _one(t["opta_exporter_last_event_timestamp_seconds"]),
            "last_error": view.health.last_error,
            "last_error_time": view.health.last_error_wall,
        },
        "lmx": {
            "up": _one(t["opta_lmx_up"]) == 1.0,
            "version": info[0][0][0] if info else None,
            "health": health,
            "shedding": _one(t["opta_lmx_load_shedding"]) == 1.0,
            "memory": {
                "used_bytes": _one(t["opta_lmx_memory_used_bytes"]),
                "total_bytes": _one(t["opta_lmx_memory_total_bytes"]),
                "threshold_ratio": _one(t["opta_lmx_memory_threshold_ratio"]),
                "usage_ratio": _one(t["opta_lmx_memory_usage_ratio"]),
            },
            "requests": {
                "in_flight": _one(t["opta_lmx_requests_in_flight"]),
                "max_concurrent": _one(t["opta_lmx_requests_max_concurrent"]),
            },
            "relay": {
                "requests_total": _relayed(families, "lmx_requests_total"),
                "errors_total": _relayed(families, "lmx_errors_total"),
            },
        },
        "models": _models(t),
        "throughput": {
            "window_seconds": view.state.window.duration,
            "resolution_seconds": resolution,
            "samples": [[ts, rate] for ts, rate in window_samples(view)],
            "models": {
                model: [[ts, rate] for ts, rate in samples] for model, samples in lines.items()
            },
            "models_with_samples": with_samples,
        },
        "sources": {
            labels[0]: {"up": v == 1.0, "last_success": last_success.get(labels[0])}
            for labels, v in t["opta_exporter_source_up"]
        },
    }
