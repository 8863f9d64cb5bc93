"""The relayed families as exposition text, rendered once per read instead of per scrape.

They change only when the reader finishes a read (every 15 s) or the last read goes
stale, while Prometheus may scrape far more often; and the client library needs ~15 ms
to write 100 models' worth. The text is kept per format until the view changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition

from opta_exporter.relay import RelayView
from opta_exporter.relay_collector import RelaySource, relay_metrics


class _Fixed:
    """A one-off collector over metrics already built from one view."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


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
        self._cached: dict[bool, tuple[RelayView, str]] = {}

    def render(self, openmetrics: bool) -> str:
        """Text format 0.0.4, or OpenMetrics without its closing `# EOF`."""
        view = self._reader.view()
        with self._lock:
            hit = self._cached.get(openmetrics)
            if hit is not None and _same(hit[0], view):
                return hit[1]
        source = _Fixed(relay_metrics(view))
        if openmetrics:
            raw: bytes = openmetrics_exposition.generate_latest(source)  # type: ignore[no-untyped-call]
            text = raw.decode().removesuffix("# EOF\n")
        else:
            text = generate_latest(source).decode()
        with self._lock:
            self._cached[openmetrics] = (view, text)
        return text
