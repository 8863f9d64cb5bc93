"""The relayed families as exposition text, written by the client library once per read.

They change only when the reader finishes a read (every `--lmx.relay-interval`) or the
last read goes stale, while Prometheus may scrape far more often: so the text is kept per
format and view. After each read the reader's thread writes it again for every format a
scrape has asked for (`refresh`), so no scrape waits on the library's writer, whose
OpenMetrics pass over a 100-model body is the slow part (bench/README.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition

from opta_exporter.relay.families import RelaySource, relay_metrics
from opta_exporter.relay.reader import RelayView

# the OpenMetrics writer carries no annotations: give it the text writer's type
_om_generate = openmetrics_exposition.generate_latest
_EOF = b"# EOF\n"


class _Families:
    """What the library's writers take: anything with `collect()`."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def write(metrics: Iterable[Metric], openmetrics: bool) -> bytes:
    """The library's text for these families; OpenMetrics without its closing `# EOF`,
    which /metrics writes once after the exporter's own families."""
    families = _Families(metrics)
    if openmetrics:
        writer: Callable[[_Families], bytes] = _om_generate
        return writer(families).removesuffix(_EOF)
    return generate_latest(families)


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
        text = write(relay_metrics(view), openmetrics)
        with self._lock:
            self._cached[openmetrics] = (view, text)
        return text

    def refresh(self) -> None:
        """After a read, from the reader's thread: write each format scrapes use now."""
        with self._lock:
            formats = list(self._cached)
        for openmetrics in formats:
            self.render(openmetrics)
