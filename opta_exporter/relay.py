"""LMX's own /admin/metrics, read in the background and re-exposed under LMX's names.

A running LMX reports requests only there, behind an `X-Admin-Key` header older
Prometheus cannot send, in text that breaks on an unusual model id (see relay_parse).
The read runs on its own thread and interval, never inside a scrape: a slow LMX must not
make /metrics slow. Relayed families are shown only while the last good read is at most
3 intervals old, so a dead LMX disappears (`absent()` fires) instead of a flat line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import requests
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from opta_exporter.collector import MetricSpec
from opta_exporter.config import Config
from opta_exporter.labels import ModelCap
from opta_exporter.relay_parse import RelayFamily, RelaySample, cap_models, parse_lmx_metrics
from opta_exporter.store import Clock, SystemClock

log = logging.getLogger(__name__)

PATH = "/admin/metrics"
READ_TIMEOUT = 10.0
STALE_INTERVALS = 3
MAX_BODY_BYTES = 8 * 1024 * 1024
# The snapshots give these in base units (opta_lmx_*); relaying LMX's GB would duplicate.
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
        "Samples of LMX's /admin/metrics that could not be relayed (unparseable, cap).",
    ),
)


class RelayError(Exception):
    """A read failed; the message is safe to log (never the key)."""


@dataclass(frozen=True)
class RelayView:
    """What a scrape needs, copied under the reader's lock."""

    families: Mapping[str, RelayFamily]  # empty unless the last good read is fresh
    last_success_wall: float | None
    reads: Mapping[str, int] = field(default_factory=dict)
    repaired: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)


class RelayReader:
    """Fetches and keeps the last good read; one read at a time."""

    def __init__(
        self, config: Config, session: requests.Session, clock: Clock | None = None
    ) -> None:
        self._config = config
        self._session = session
        self._clock: Clock = clock or SystemClock()
        self._read_lock = threading.Lock()
        self._lock = threading.Lock()
        # Notified after every read, so tests wait for a read instead of sleeping.
        self.changed = threading.Condition(self._lock)
        self._cap = ModelCap(config.max_models)
        self._families: Mapping[str, RelayFamily] = {}
        self._last_mono: float | None = None
        self._last_wall: float | None = None
        self._reads = {"success": 0, "failure": 0}
        self._repaired = 0
        self._dropped = {"unparseable": 0, "cap": 0}
        self._last_error: str | None = None
        self._last_losses = (0, 0)

    def _fetch(self) -> str:
        headers = {"Accept": "text/plain"}
        if self._config.admin_key is not None:
            headers["X-Admin-Key"] = self._config.admin_key  # the header, never the query
        try:
            with self._session.get(
                self._config.lmx_url + PATH,
                headers=headers,
                timeout=(self._config.connect_timeout, READ_TIMEOUT),
                stream=True,
                allow_redirects=False,  # requests would carry X-Admin-Key to the new place
            ) as resp:
                if resp.status_code in (401, 403):
                    raise RelayError(f"HTTP {resp.status_code}, admin key refused")
                if resp.status_code != 200:
                    raise RelayError(f"HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_content(65536):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise RelayError(f"body over {MAX_BODY_BYTES} bytes")
        except requests.Timeout:
            raise RelayError("timed out") from None
        except requests.RequestException as exc:
            raise RelayError(f"cannot connect or read ({type(exc).__name__})") from None
        return body.decode("utf-8", errors="replace")

    def read_once(self) -> bool:
        """One read; True when it succeeded. Never raises for LMX's or the network's faults."""
        with self._read_lock:
            try:
                parse = parse_lmx_metrics(self._fetch())
            except RelayError as exc:
                self._failed(str(exc))
                return False
            if parse.sample_count == 0 and parse.dropped:
                reason = f"{parse.dropped} unreadable line(s), no metric: a proxy's page?"
                self._failed(reason, parse.dropped)
                return False
            capped, refused = cap_models(parse, self._cap)
            self._log_losses(parse.dropped, refused)
            with self._lock:
                self._families = capped.families
                self._last_mono, self._last_wall = self._clock.monotonic(), self._clock.time()
                self._reads["success"] += 1
                self._repaired += parse.repaired
                self._dropped["unparseable"] += parse.dropped
                self._dropped["cap"] += refused
                self.changed.notify_all()
            if self._last_error is not None:
                log.info("relay: reading LMX's %s works again", PATH)
                self._last_error = None
            return True

    def _failed(self, reason: str, unreadable: int = 0) -> None:
        with self._lock:
            self._reads["failure"] += 1
            self._dropped["unparseable"] += unreadable
            self.changed.notify_all()
        if reason != self._last_error:
            log.warning("relay: reading LMX's %s failed: %s", PATH, reason)
        self._last_error = reason

    def _log_losses(self, unreadable: int, refused: int) -> None:
        """Once per change, not per read: the same defect every 15 s is one message."""
        if (unreadable, refused) != self._last_losses and (unreadable or refused):
            log.warning(
                "relay: %d line(s) of LMX's %s unreadable (dropped), %d sample(s) over the "
                "model cap of %d (dropped)",
                unreadable,
                PATH,
                refused,
                self._config.max_models,
            )
        self._last_losses = (unreadable, refused)

    def run(self, stop: threading.Event) -> None:
        """Thread body: read, wait an interval, until `stop` is set. Never raises."""
        while not stop.is_set():
            try:
                self.read_once()
            except Exception:
                log.exception("relay: unexpected error reading LMX's %s", PATH)
            if stop.wait(self._config.relay_interval):
                return

    def wait_for_reads(self, count: int, timeout: float) -> bool:
        """Block until `count` reads (of any outcome) are done."""
        with self.changed:
            return self.changed.wait_for(lambda: sum(self._reads.values()) >= count, timeout)

    def view(self) -> RelayView:
        now = self._clock.monotonic()
        with self._lock:
            last = self._last_mono
            fresh = last is not None and now - last <= STALE_INTERVALS * self._config.relay_interval
            return RelayView(
                self._families if fresh else {},
                self._last_wall,
                dict(self._reads),
                self._repaired,
                dict(self._dropped),
            )


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
    for reason in ("unparseable", "cap"):
        family.add_metric([reason], view.dropped.get(reason, 0))
    yield family


def _label_names(samples: Iterable[RelaySample], histogram: bool = False) -> list[str]:
    """In first-seen order; a histogram's `le` is the library's to add."""
    names: dict[str, None] = {}
    for sample in samples:
        names.update(dict.fromkeys(k for k in sample.labels if not (histogram and k == "le")))
    return list(names)


def _relayed(family: RelayFamily) -> Iterator[Metric]:
    """LMX's family under LMX's name and type; the library escapes every label value.

    A type prometheus_client cannot rebuild sample by sample (a summary, a counter LMX
    named without `_total`, untyped) goes out as one untyped family per sample name, so
    the names stay exactly LMX's.
    """
    names = _label_names(family.samples, family.kind == "histogram")
    help_text = family.help or "Relayed from LMX's /admin/metrics."

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
