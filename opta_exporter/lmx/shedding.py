"""LMX's memory crisis as the exporter sees it: every admin read but /admin/health
answered 503 `overloaded` (load shedding), until one succeeds again.

A spell is logged once when it begins and once when it ends, never per read: every
reader meets it on each of its intervals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# LMX's shedding middleware lets exactly these through: a 200 from them says nothing.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/admin/health"})


class SheddingWatch:
    def __init__(self, report: Callable[[bool], object]) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._shedding = False

    def answered(self, path: str, status: int, overloaded: bool) -> None:
        """Every answer LMX gave a reader: a 503 `overloaded` begins or continues a
        spell, a 200 from a route LMX would shed ends it, anything else says nothing."""
        if overloaded:
            shedding = True
        elif status == 200 and path not in EXEMPT_PATHS:
            shedding = False
        else:
            return
        with self._lock:
            changed, self._shedding = shedding != self._shedding, shedding
            if changed:
                self._report(shedding)
        if changed and shedding:
            log.warning(
                "LMX is shedding load (memory pressure): admin reads get 503 'overloaded' "
                "until it recovers; figures read before now are no longer shown"
            )
        elif changed:
            log.info("LMX stopped shedding load: admin reads answer again")
