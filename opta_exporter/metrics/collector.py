"""State -> metric families, at scrape time (a custom collector, as client_python advises
for data proxied from another system), in the order and shape specs.py declares.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from opta_exporter import __version__
from opta_exporter.core.health import CONNECTION_STATES, ExporterHealth
from opta_exporter.core.histogram import HistogramFamily
from opta_exporter.core.labels import READINESS_STATES
from opta_exporter.core.readings import HEALTH_STATUSES, VERDICTS, DiagnosticsReading
from opta_exporter.core.state import LmxState
from opta_exporter.core.window import window_stats
from opta_exporter.metrics.specs import METRICS, MetricSpec, Sample, Table
from opta_exporter.store import Store


def _scalar(value: float | None) -> list[Sample]:
    return [] if value is None else [((), value)]


def _keyed(table: Mapping[str, float]) -> list[Sample]:
    return [((key,), value) for key, value in table.items()]


def _pairs(table: dict[tuple[str, str], float]) -> list[Sample]:
    return list(table.items())


def _diagnostics(d: DiagnosticsReading | None) -> dict[str, list[Sample]]:
    if d is None:
        d = DiagnosticsReading()
    loop = None if d.crash_loop is None else float(d.crash_loop)
    return {
        "opta_lmx_crash_loop": _scalar(loop),
        "opta_lmx_models_quarantined": _scalar(d.quarantined),
        "opta_lmx_health_verdict": []
        if d.verdict is None
        else [((v,), 1.0 if v == d.verdict else 0.0) for v in VERDICTS],
        "opta_lmx_agent_runs_active": _scalar(d.agents_active),
        "opta_lmx_agent_runs_finished_total": _keyed(d.agents_finished),
    }


def _jobs(s: LmxState, h: ExporterHealth, now: float) -> dict[str, list[Sample]]:
    downloads = s.downloads_running if h.fresh("downloads", now) else ()
    return {
        "opta_lmx_download_progress_ratio": [
            ((d.repo,), d.progress_ratio) for d in downloads if d.progress_ratio is not None
        ],
        "opta_lmx_download_bytes": [
            ((d.repo, kind), value)
            for d in downloads
            for kind, value in (("downloaded", d.downloaded_bytes), ("total", d.total_bytes))
            if value is not None
        ],
        "opta_lmx_quantize_jobs_listed": _keyed(s.quantize_listed)
        if h.fresh("quantize", now)
        else [],
    }


def tables(
    s: LmxState, h: ExporterHealth, now: float, wall: float
) -> list[tuple[MetricSpec, Table]]:
    """Every family's data, in METRICS order, with or without samples: `absent()` must
    mean broken, not zero. Both the client-library families and the fast renderer
    (exposition.py) are built from this."""
    # the window's samples are rates from relay reads: none while the relay is stale
    relay = h.fresh("relay", now)
    samples = s.throughput.window.samples(wall) if relay else []
    stats = window_stats(samples)
    # A polled figure is shown only while its source is fresh: frozen is worse than absent.
    status = h.fresh("status", now)
    memory = h.fresh("memory", now)
    health = s.health if h.fresh("health", now) else None
    values: dict[str, list[Sample]] = {
        "opta_lmx_up": [((), 1.0 if h.up(now) else 0.0)],
        "opta_lmx_info": [((s.version,), 1.0)] if status and s.version is not None else [],
        "opta_lmx_start_time_seconds": _scalar(s.start_time if status else None),
        "opta_lmx_memory_total_bytes": _scalar(s.memory_total if memory else None),
        "opta_lmx_memory_used_bytes": _scalar(s.memory_used if memory else None),
        "opta_lmx_memory_available_bytes": _scalar(s.memory_available if memory else None),
        "opta_lmx_memory_threshold_ratio": _scalar(s.memory_threshold if memory else None),
        "opta_lmx_requests_in_flight": _scalar(s.in_flight if status else None),
        "opta_lmx_requests_max_concurrent": _scalar(s.max_concurrent if status else None),
        "opta_lmx_health_status": []
        if health is None or health.status is None
        else [((st,), 1.0 if st == health.status else 0.0) for st in HEALTH_STATUSES],
        "opta_lmx_memory_usage_ratio": _scalar(
            None if health is None else health.memory_usage_ratio
        ),
        "opta_lmx_metal_memory_bytes": [] if health is None else _keyed(health.metal_bytes),
        "opta_lmx_load_shedding": [((), 1.0 if s.shedding else 0.0)],
        **_diagnostics(s.diagnostics if h.fresh("diagnostics", now) else None),
        "opta_lmx_model_loaded": [((m, f), 1.0) for m, f in s.loaded.items()],
        "opta_lmx_model_memory_bytes": _keyed(s.model_memory),
        "opta_lmx_model_readiness": [
            ((m, state), 1.0 if state == current else 0.0)
            for m, current in s.readiness.items()
            for state in READINESS_STATES
        ],
        "opta_lmx_model_crashes": _keyed(s.crashes),
        **_jobs(s, h, now),
        "opta_lmx_events_total": _keyed(s.events),
        "opta_lmx_model_loads_total": _pairs(s.loads),
        "opta_lmx_model_unloads_total": _keyed(s.unloads),
        "opta_lmx_model_canaries_total": _keyed(s.canaries),
        "opta_lmx_model_compatibility_checks_total": _pairs(s.compat),
        "opta_lmx_downloads_total": _keyed(s.downloads),
        "opta_lmx_quantize_jobs_total": _keyed(s.quantize_jobs),
        "opta_lmx_config_reloads_total": [((), s.config_reloads)],
        "opta_lmx_throughput_window_tokens_per_second": []
        if stats is None
        else [((k,), v) for k, v in stats.items()],
        "opta_lmx_throughput_window_samples": [((), float(len(samples)))] if relay else [],
        "opta_exporter_build_info": [((__version__, platform.python_version()), 1.0)],
        "opta_exporter_connection_state": [
            ((state,), 1.0 if state == h.connection_state else 0.0) for state in CONNECTION_STATES
        ],
        "opta_exporter_reconnects_total": _keyed(h.reconnects),
        "opta_exporter_backoff_seconds": [((), h.backoff_seconds)],
        "opta_exporter_last_event_timestamp_seconds": _scalar(h.last_event_wall),
        "opta_exporter_event_errors_total": _keyed(s.event_errors),
        "opta_exporter_resyncs_total": _keyed(h.resyncs),
        "opta_exporter_source_up": [
            ((name,), 1.0 if source.up else 0.0) for name, source in h.sources.items()
        ],
        "opta_exporter_source_last_success_timestamp_seconds": [
            ((name,), source.last_success_wall)
            for name, source in h.sources.items()
            if source.last_success_wall is not None
        ],
        "opta_exporter_state_drift_total": [((), s.state_drift)],
        "opta_exporter_series_dropped_total": _keyed(s.series_dropped()),
        "opta_exporter_thread_up": [
            ((name,), 1.0 if up else 0.0) for name, up in h.threads.items()
        ],
        "opta_exporter_thread_errors_total": _keyed(h.thread_errors),
    }
    histograms: dict[str, HistogramFamily] = {
        "opta_lmx_model_load_duration_seconds": s.load_duration,
        "opta_lmx_model_canary_duration_seconds": s.canary_duration,
        "opta_lmx_download_duration_seconds": s.download_duration,
    }
    return [
        (spec, histograms[spec.name] if spec.kind == "histogram" else values[spec.name])
        for spec in METRICS
    ]


def _families(s: LmxState, h: ExporterHealth, now: float, wall: float) -> Iterator[Metric]:
    for spec, table in tables(s, h, now, wall):
        names = list(spec.labels)
        if isinstance(table, HistogramFamily):
            hist = table
            hfam = HistogramMetricFamily(spec.name, spec.help, labels=names)
            for labels, series in hist.series.items():
                hfam.add_metric(
                    list(labels), buckets=series.cumulative(hist.bounds), sum_value=series.total
                )
            yield hfam
            continue
        family: CounterMetricFamily | GaugeMetricFamily
        if spec.kind == "counter":
            family = CounterMetricFamily(spec.name, spec.help, labels=names)
        else:
            family = GaugeMetricFamily(spec.name, spec.help, labels=names)
        for labels, value in table:
            family.add_metric(list(labels), value)
        yield family


class LmxCollector(Collector):
    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        view = self._store.view()
        return list(_families(view.state, view.health, view.now, view.wall))

    def describe(self) -> Iterable[Metric]:
        return list(_families(LmxState(), ExporterHealth(), 0.0, 0.0))
