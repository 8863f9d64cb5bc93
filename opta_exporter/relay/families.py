"""The relay's families: LMX's own names, types and labels, rebuilt with the client library
(so every label value is escaped), plus the relay's health, from one RelayView."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from opta_exporter.metrics.specs import MetricSpec
from opta_exporter.relay.parse import RelayFamily, RelaySample
from opta_exporter.relay.reader import RelayView

NOT_RELAYED = frozenset(
    {
        "lmx_uptime_seconds",
        "lmx_loaded_models",
        "lmx_memory_used_gb",
        "lmx_memory_total_gb",
        "lmx_in_flight_requests",
        "lmx_concurrent_limit",
    }
)
RELAY_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "opta_exporter_relay_reads_total",
        "counter",
        ("outcome",),
        "Reads of LMX's /admin/metrics by outcome.",
    ),
    MetricSpec(
        "opta_exporter_relay_last_success_timestamp_seconds",
        "gauge",
        (),
        "Wall clock of the last good read of LMX's /admin/metrics.",
    ),
    MetricSpec(
        "opta_exporter_relay_samples_repaired_total",
        "counter",
        (),
        "Relayed samples whose label values LMX had left unescaped.",
    ),
    MetricSpec(
        "opta_exporter_relay_samples_dropped_total",
        "counter",
        ("reason",),
        "Samples of LMX's /admin/metrics that could not be relayed: unparseable, cap"
        " (model cap), series_cap (past the per-read series cap), too_large (bodies refused"
        " whole over the byte cap, one per read: their samples were never read).",
    ),
)


DROP_REASONS = ("unparseable", "cap", "series_cap", "too_large")
# A family's HELP is LMX's own `# HELP` text; this only where LMX gives none.
FALLBACK_HELP = "Relayed from LMX's /admin/metrics."


class RelaySource(Protocol):
    def view(self) -> RelayView: ...


def _health(view: RelayView) -> Iterator[Metric]:
    reads, last, repaired, dropped = RELAY_METRICS
    family = CounterMetricFamily(reads.name, reads.help, labels=reads.labels)
    for outcome in ("success", "failure"):
        family.add_metric([outcome], view.reads.get(outcome, 0))
    yield family
    gauge = GaugeMetricFamily(last.name, last.help, labels=())
    if view.last_success_wall is not None:
        gauge.add_metric([], view.last_success_wall)
    yield gauge
    yield CounterMetricFamily(repaired.name, repaired.help, value=view.repaired)
    family = CounterMetricFamily(dropped.name, dropped.help, labels=dropped.labels)
    for reason in DROP_REASONS:
        family.add_metric([reason], view.dropped.get(reason, 0))
    yield family


def _label_names(samples: Iterable[RelaySample], histogram: bool = False) -> list[str]:
    """In first-seen order; a histogram's `le` is the library's to add."""
    names: dict[str, None] = {}
    for sample in samples:
        names.update(dict.fromkeys(k for k in sample.labels if not (histogram and k == "le")))
    return list(names)


def _relayed(family: RelayFamily) -> Iterator[Metric]:
    """LMX's family under LMX's name, type and HELP; the library escapes every label value.

    A type prometheus_client cannot rebuild sample by sample (a summary, a counter LMX
    named without `_total`, untyped) goes out as one untyped family per sample name, so
    the names stay exactly LMX's.
    """
    names = _label_names(family.samples, family.kind == "histogram")
    help_text = family.help or FALLBACK_HELP

    def values(sample: RelaySample) -> list[str]:
        return [sample.labels.get(n, "") for n in names]

    if family.kind == "counter" and family.name.endswith("_total"):
        counter = CounterMetricFamily(family.name, help_text, labels=names)
        for s in family.samples:
            counter.add_metric(values(s), s.value)
        yield counter
    elif family.kind == "gauge":
        gauge = GaugeMetricFamily(family.name, help_text, labels=names)
        for s in family.samples:
            gauge.add_metric(values(s), s.value)
        yield gauge
    elif family.kind == "histogram":
        yield _histogram(family, names, help_text)
    else:
        by_name: dict[str, list[RelaySample]] = {}
        for s in family.samples:
            by_name.setdefault(s.name, []).append(s)
        for name, samples in by_name.items():
            own = _label_names(samples)
            untyped = UnknownMetricFamily(name, help_text, labels=own)
            for s in samples:
                untyped.add_metric([s.labels.get(n, "") for n in own], s.value)
            yield untyped


def _histogram(family: RelayFamily, names: list[str], help_text: str) -> Metric:
    """Buckets with LMX's own `le` strings, sorted; `_count` is the `+Inf` bucket."""
    buckets: dict[tuple[str, ...], list[tuple[str, float]]] = {}
    sums: dict[tuple[str, ...], float] = {}
    for s in family.samples:
        key = tuple(s.labels.get(n, "") for n in names)
        if s.name == family.name + "_bucket":
            buckets.setdefault(key, []).append((s.labels["le"], s.value))
        elif s.name == family.name + "_sum":
            sums[key] = s.value
    hist = HistogramMetricFamily(family.name, help_text, labels=names)
    for key, series in buckets.items():
        hist.add_metric(list(key), sorted(series, key=lambda b: float(b[0])), sums.get(key))
    return hist


def relay_metrics(view: RelayView) -> list[Metric]:
    """Only `lmx_*` families: anything else in the body (a runtime's `process_*`) is
    not LMX's to relay and could collide with the exporter's own names."""
    metrics = list(_health(view))
    for name, family in view.families.items():
        if name.startswith("lmx_") and name not in NOT_RELAYED:
            metrics += _relayed(family)
    return metrics


class RelayCollector(Collector):
    """The relay's health always; LMX's families while the last good read is fresh."""

    def __init__(self, reader: RelaySource) -> None:
        self._reader = reader

    @property
    def reader(self) -> RelaySource:
        return self._reader

    def collect(self) -> Iterable[Metric]:
        return relay_metrics(self._reader.view())

    def describe(self) -> Iterable[Metric]:
        return list(_health(RelayView({}, None)))
