"""The relayed families as exposition text, rendered once per read instead of per scrape.

They change only when the reader finishes a read (every 15 s) or the last read goes
stale, while Prometheus may scrape far more often. The families are built with the
client library (relay_collector), but written here, line for line as the library writes
them (tests compare): its OpenMetrics writer checks every label name a character at a
time, ~35 ms for 100 models' worth, and a scrape after each read would pay it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric

from opta_exporter.metrics.exposition import header, sample_line
from opta_exporter.relay.families import RelaySource, relay_metrics
from opta_exporter.relay.reader import RelayView


def write(metrics: Iterable[Metric], openmetrics: bool) -> str:
    """The library's text for these families (no exemplars, timestamps or `_created`:
    the relay makes none), OpenMetrics without its closing `# EOF`."""
    out: list[str] = []
    for metric in metrics:
        name = metric.name + "_total" if metric.type == "counter" else metric.name
        out.append(header(name, metric.type, metric.documentation, openmetrics))
        out += (sample_line(s.name, s.labels, s.value) for s in metric.samples)
    return "".join(out)


def _same(a: RelayView, b: RelayView) -> bool:
    return (
        a.families is b.families
        and a.last_success_wall == b.last_success_wall
        and a.reads == b.reads
        and a.repaired == b.repaired
        and a.dropped == b.dropped
    )


class RelayText:
    def __init__(self, reader: RelaySource) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._cached: dict[bool, tuple[RelayView, bytes]] = {}

    def render(self, openmetrics: bool) -> bytes:
        """Text format 0.0.4, or OpenMetrics without its closing `# EOF`, encoded."""
        view = self._reader.view()
        with self._lock:
            hit = self._cached.get(openmetrics)
            if hit is not None and _same(hit[0], view):
                return hit[1]
        text = write(relay_metrics(view), openmetrics).encode()
        with self._lock:
            self._cached[openmetrics] = (view, text)
        return text
