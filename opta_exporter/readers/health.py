"""/admin/health on its interval: LMX's status, memory usage and Metal memory.

It is the one admin read LMX still answers while it sheds load, so it is the memory
figure that survives LMX's memory crisis; cheap on LMX's side, so read often.
"""

from __future__ import annotations

import logging

from opta_exporter.core.readings import parse_health
from opta_exporter.lmx.client import LmxClient, LmxError
from opta_exporter.store import Store

log = logging.getLogger(__name__)
PATH = "/admin/health"


class HealthReader:
    def __init__(self, lmx: LmxClient, store: Store) -> None:
        self._lmx = lmx
        self._store = store
        self._last_error: str | None = None

    def read_once(self) -> bool:
        try:
            reading = parse_health(self._lmx.read_json(PATH))
        except LmxError as exc:
            self._store.source_read("health", False)
            if str(exc) != self._last_error:
                log.warning("health read failed: %s", exc)
            self._last_error = str(exc)
            return False
        self._store.set_health(reading)
        self._store.source_read("health", True)
        if self._last_error is not None:
            log.info("health read works again")
            self._last_error = None
        return True
