"""The exporter's own metric families: name, type, labels and help, in one list.

METRICS is the one source of what the exporter exposes: the collector, `describe()`,
the fast writer, the generated metric table (docs/metrics.md), the dashboards' and rules'
checks all read it, so none can drift from the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from opta_exporter.core.histogram import HistogramFamily

Sample = tuple[tuple[str, ...], float]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # gauge | counter | histogram
    labels: tuple[str, ...]
    help: str


def _g(name: str, labels: str, text: str) -> MetricSpec:
    return MetricSpec(name, "gauge", tuple(labels.split()), text)


def _c(name: str, labels: str, text: str) -> MetricSpec:
    return MetricSpec(name, "counter", tuple(labels.split()), text)


def _h(name: str, labels: str, text: str) -> MetricSpec:
    return MetricSpec(name, "histogram", tuple(labels.split()), text)


METRICS: tuple[MetricSpec, ...] = (
    _g("opta_lmx_up", "", "1 while the LMX event stream is open and not stale."),
    _g("opta_lmx_info", "version", "LMX version from the last snapshot."),
    _g("opta_lmx_start_time_seconds", "", "LMX start time, unix seconds."),
    _g("opta_lmx_memory_total_bytes", "", "Unified memory in total."),
    _g("opta_lmx_memory_used_bytes", "", "Unified memory in use."),
    _g("opta_lmx_memory_available_bytes", "", "Unified memory available."),
    _g("opta_lmx_memory_threshold_ratio", "", "LMX's memory admission threshold, 0-1."),
    _g("opta_lmx_requests_in_flight", "", "Requests being served."),
    _g("opta_lmx_requests_max_concurrent", "", "LMX's concurrency limit."),
    _g("opta_lmx_health_status", "status", "One-hot status LMX's /admin/health reports."),
    _g(
        "opta_lmx_memory_usage_ratio",
        "",
        "Memory in use, 0-1, from /admin/health: still read while LMX sheds load.",
    ),
    _g("opta_lmx_metal_memory_bytes", "kind", "Metal memory, while LMX reports it."),
    _g("opta_lmx_load_shedding", "", "1 while LMX answers admin reads 503 'overloaded'."),
    _g("opta_lmx_crash_loop", "", "1 while LMX's diagnostics detect a crash loop."),
    _g("opta_lmx_models_quarantined", "", "Models LMX's readiness tracker holds quarantined."),
    _g("opta_lmx_health_verdict", "verdict", "One-hot verdict of LMX's /admin/diagnostics."),
    _g("opta_lmx_agent_runs_active", "", "Agent runs in progress."),
    _c("opta_lmx_agent_runs_finished_total", "outcome", "Agent runs finished since LMX started."),
    _g("opta_lmx_model_loaded", "model format", "1 for each loaded model."),
    _g("opta_lmx_model_memory_bytes", "model", "Memory held by a loaded model."),
    _g("opta_lmx_model_readiness", "model state", "One-hot readiness state of a model."),
    _g("opta_lmx_model_crashes", "model", "LMX's crash count for the model."),
    _g("opta_lmx_download_progress_ratio", "repo", "Progress of running downloads, 0-1."),
    _g("opta_lmx_download_bytes", "repo kind", "Bytes of running downloads: downloaded, total."),
    _g("opta_lmx_quantize_jobs_listed", "status", "Quantize jobs LMX lists, by status."),
    _c("opta_lmx_events_total", "event", "Events received, heartbeats included."),
    _c("opta_lmx_model_loads_total", "model format", "Model loads."),
    _h("opta_lmx_model_load_duration_seconds", "format", "Model load duration."),
    _c("opta_lmx_model_unloads_total", "reason", "Model unloads by reason."),
    _c("opta_lmx_model_canaries_total", "outcome", "Canary runs by outcome."),
    _h("opta_lmx_model_canary_duration_seconds", "outcome", "Canary duration."),
    _c(
        "opta_lmx_model_compatibility_checks_total",
        "backend outcome",
        "Compatibility checks recorded.",
    ),
    _c("opta_lmx_downloads_total", "outcome", "Finished downloads by outcome."),
    _h("opta_lmx_download_duration_seconds", "", "Duration of completed downloads."),
    _c("opta_lmx_quantize_jobs_total", "outcome", "Finished quantize jobs by outcome."),
    _c("opta_lmx_config_reloads_total", "", "LMX config reloads."),
    _g(
        "opta_lmx_throughput_window_tokens_per_second",
        "stat",
        "Completion tokens/s over the window (mean, p50, p95, max, min, latest), each sample"
        " the rate between two reads of LMX's lmx_completion_tokens_total.",
    ),
    _g(
        "opta_lmx_throughput_window_samples",
        "",
        "Rate samples in the throughput window (one per relay read after the first).",
    ),
    _g("opta_exporter_build_info", "version python_version", "The exporter's build."),
    _g("opta_exporter_connection_state", "state", "One-hot state of the stream consumer."),
    _c("opta_exporter_reconnects_total", "reason", "Stream reconnects by reason."),
    _g("opta_exporter_backoff_seconds", "", "Wait before the next attempt, 0 if connected."),
    _g(
        "opta_exporter_last_event_timestamp_seconds",
        "",
        "Wall clock of the last event or heartbeat.",
    ),
    _c("opta_exporter_event_errors_total", "reason", "Events refused as bad input."),
    _c("opta_exporter_resyncs_total", "outcome", "Snapshot resyncs by outcome."),
    _g("opta_exporter_source_up", "source", "1 if the last read of that LMX source succeeded."),
    _g(
        "opta_exporter_source_last_success_timestamp_seconds",
        "source",
        "Wall clock of the source's last good read; its figures go after two intervals.",
    ),
    _c(
        "opta_exporter_state_drift_total",
        "",
        "Models whose presence a snapshot corrected: the trace of lost events.",
    ),
    _c(
        "opta_exporter_series_dropped_total", "metric", "Label sets refused by the cardinality cap."
    ),
    _g(
        "opta_exporter_thread_up",
        "thread",
        "1 while the exporter's long-lived thread runs; 0 means it died (see /-/ready).",
    ),
    _c(
        "opta_exporter_thread_errors_total",
        "thread",
        "Unexpected errors a long-lived thread caught from its input, counted and survived.",
    ),
)


Table = list[Sample] | HistogramFamily
