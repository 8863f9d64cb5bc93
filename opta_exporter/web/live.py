"""/api/live's JSON: one LMX at a glance, for the live page (docs/live-api.md).

Built from the same `tables()` /metrics is written from, and the relay's same view, so
every figure here is the one /metrics shows at that moment, and a figure /metrics leaves
out (a stale source) is null here. Pure: no socket, lock or clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opta_exporter.core.histogram import HistogramFamily
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


def throughput(view: View, resolution: float | None) -> dict[str, Any]:
    """The chart's data, exactly when /metrics shows the window's statistics (samples and
    models are null while the relay is stale: the chart starts over). `models` holds the
    lines the chart draws: the MAX_LINES busiest models' own windows (from
    `lmx_model_tokens_total`); only those travel, since at 100 models a document with
    every line would be ~1 MB a second for each viewer."""
    doc: dict[str, Any] = {
        "window_seconds": view.state.throughput.window.duration,
        "resolution_seconds": resolution,
        "samples": None,
        "models": None,
        "models_with_samples": 0,
    }
    if not view.health.fresh("relay", view.now):
        return doc
    lines = {m: w.samples(view.wall) for m, w in view.state.throughput.models.items()}
    lines = {m: samples for m, samples in lines.items() if samples}
    doc["samples"] = [[ts, rate] for ts, rate in view.state.throughput.window.samples(view.wall)]
    doc["models"] = {m: [[ts, rate] for ts, rate in lines[m]] for m in drawn(lines)}
    doc["models_with_samples"] = len(lines)
    return doc


@dataclass
class Sent:
    """What one stream has sent of the chart: the newest timestamp of each line."""

    total: float | None = None
    models: dict[str, float] = field(default_factory=dict)


def only_new(doc: dict[str, Any], sent: Sent) -> dict[str, Any]:
    """`doc` with the chart's samples this stream already sent left out, and `sent`
    brought up to date: after the first event a `live` event carries a second's news,
    not the whole window again. A line new to the stream (a model just among the
    busiest) comes whole; a stale relay (null samples) starts the stream over."""
    tp = doc["throughput"]
    if tp["samples"] is None:
        sent.total, sent.models = None, {}
        return doc
    total, before = sent.total, sent.models

    def newer(samples: list[list[float]], than: float | None) -> list[list[float]]:
        return samples if than is None else [s for s in samples if s[0] > than]

    samples = newer(tp["samples"], total)
    models = {m: newer(line, before.get(m)) for m, line in tp["models"].items()}
    sent.total = tp["samples"][-1][0] if tp["samples"] else total
    sent.models = {
        m: line[-1][0] if line else before[m]
        for m, line in tp["models"].items()
        if line or m in before
    }
    return doc | {"throughput": tp | {"samples": samples, "models": models}}


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
        "throughput": throughput(view, resolution),
        "sources": {
            labels[0]: {"up": v == 1.0, "last_success": last_success.get(labels[0])}
            for labels, v in t["opta_exporter_source_up"]
        },
    }
