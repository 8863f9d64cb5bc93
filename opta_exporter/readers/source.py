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
    HealthReading,
    parse_diagnostics,
    parse_health,
    parse_models,
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
    ) -> None:
        """`apply(reading, since)` stores a reading; `since` is the event count before
        the read was sent, so a reading never overrules an event that came after it."""
        self.name = name
        self.path = path
        self._lmx = lmx
        self._store = store
        self._parse = parse
        self._apply = apply
        self._last_error: str | None = None

    def read_once(self) -> bool:
        since = self._store.seq()
        try:
            reading = self._parse(self._lmx.read_json(self.path))
        except LmxError as exc:
            self._store.source_read(self.name, False)
            if str(exc) != self._last_error:
                log.warning("%s read failed: %s", self.name, exc)
            self._last_error = str(exc)
            return False
        self._apply(reading, since)
        self._store.source_read(self.name, True)
        if self._last_error is not None:
            log.info("%s read works again", self.name)
            self._last_error = None
        return True


def admin_sources(
    config: Config, lmx: LmxClient, store: Store
) -> list[tuple[PolledSource[Any], float]]:
    """The polled admin reads, each with its interval (the daemon starts a thread each)."""
    health: PolledSource[HealthReading] = PolledSource(
        "health",
        "/admin/health",
        lmx,
        store,
        parse=parse_health,
        apply=lambda reading, _since: store.set_health(reading),
    )
    models: PolledSource[dict[str, str]] = PolledSource(
        "models",
        "/admin/models",
        lmx,
        store,
        parse=lambda body: parse_models(body, READINESS_STATES),
        apply=store.reconcile_readiness,
    )
    diagnostics: PolledSource[DiagnosticsReading] = PolledSource(
        "diagnostics",
        "/admin/diagnostics",
        lmx,
        store,
        parse=lambda body: parse_diagnostics(body, FORMATS),
        apply=lambda reading, _since: store.set_diagnostics(reading),
    )
    return [
        (health, config.health_interval),
        (models, config.models_interval),
        (diagnostics, config.diagnostics_interval),
    ]
