"""One polled admin read of LMX (health, models, diagnostics, …) as a source: read,
parse (core/readings.py), hand to the store, report the outcome.

Each source is reported (opta_exporter_source_up, …_last_success_timestamp_seconds) and
its figures are shown only while its last success is recent (metrics/collector.py), so a
source that fails is logged once per change and simply goes quiet on /metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from opta_exporter.config import Config
from opta_exporter.core.labels import FORMATS, READINESS_STATES
from opta_exporter.core.readings import (
    DiagnosticsReading,
    Download,
    HealthReading,
    jobs_active,
    parse_diagnostics,
    parse_downloads,
    parse_health,
    parse_models,
    parse_quantize,
)
from opta_exporter.lmx.client import LmxClient, LmxError
from opta_exporter.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class PolledSource(Generic[T]):
    def __init__(
        self,
        name: str,
        path: str,
        lmx: LmxClient,
        store: Store,
        *,
        parse: Callable[[dict[str, Any]], T],
        apply: Callable[[T, int], object],
        interval: float,
        busy: Callable[[T], bool] = lambda reading: False,
        busy_interval: float | None = None,
    ) -> None:
        """`apply(reading, since)` stores a reading; `since` is the event count before
        the read was sent, so a reading never overrules an event that came after it.
        While the last reading is `busy` (a job runs) the source is read every
        `busy_interval`, else every `interval`: no extra reads of an idle LMX."""
        self.name = name
        self.path = path
        self.interval = interval
        self._lmx = lmx
        self._store = store
        self._parse = parse
        self._apply = apply
        self._busy = busy
        self._busy_interval = busy_interval or interval
        self._last_busy = False
        self._last_error: str | None = None

    def wait(self) -> float:
        """Seconds until the next read."""
        return self._busy_interval if self._last_busy else self.interval

    def read_once(self) -> bool:
        """One read; LMX's and the network's faults end as False. Anything else (a body
        the decoder or parser cannot take) marks the source down and is raised for the
        thread's loop to count (readers/poll.py)."""
        since = self._store.seq()
        try:
            reading = self._parse(self._lmx.read_json(self.path))
        except Exception as exc:
            if not isinstance(exc, LmxError):
                self._store.source_read(self.name, False)
                raise
            self._store.source_read(self.name, False)
            if not exc.overloaded:  # a spell of shedding is said once (lmx/shedding.py)
                if str(exc) != self._last_error:
                    log.warning("%s read failed: %s", self.name, exc)
                self._last_error = str(exc)
            return False
        self._apply(reading, since)
        self._last_busy = self._busy(reading)
        self._store.source_read(self.name, True)
        if self._last_error is not None:
            log.info("%s read works again", self.name)
            self._last_error = None
        return True


def admin_sources(config: Config, lmx: LmxClient, store: Store) -> list[PolledSource[Any]]:
    """The polled admin reads; the daemon starts a thread for each."""
    health: PolledSource[HealthReading] = PolledSource(
        "health",
        "/admin/health",
        lmx,
        store,
        parse=parse_health,
        apply=lambda reading, _since: store.set_health(reading),
        interval=config.health_interval,
    )
    models: PolledSource[dict[str, str]] = PolledSource(
        "models",
        "/admin/models",
        lmx,
        store,
        parse=lambda body: parse_models(body, READINESS_STATES),
        apply=store.reconcile_readiness,
        interval=config.models_interval,
    )
    diagnostics: PolledSource[DiagnosticsReading] = PolledSource(
        "diagnostics",
        "/admin/diagnostics",
        lmx,
        store,
        parse=lambda body: parse_diagnostics(body, FORMATS),
        apply=lambda reading, _since: store.set_diagnostics(reading),
        interval=config.diagnostics_interval,
    )
    downloads: PolledSource[tuple[Download, ...]] = PolledSource(
        "downloads",
        "/admin/models/downloads",
        lmx,
        store,
        parse=parse_downloads,
        apply=lambda reading, _since: store.set_downloads(reading),
        interval=config.jobs_interval,
        busy=bool,
        busy_interval=config.jobs_busy_interval,
    )
    quantize: PolledSource[dict[str, float]] = PolledSource(
        "quantize",
        "/admin/quantize",
        lmx,
        store,
        parse=parse_quantize,
        apply=lambda reading, _since: store.set_quantize(reading),
        interval=config.jobs_interval,
        busy=jobs_active,
        busy_interval=config.jobs_busy_interval,
    )
    return [health, models, diagnostics, downloads, quantize]
