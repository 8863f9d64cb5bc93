"""The thread body every interval reader shares: read, wait, until stopped; never dies."""

from __future__ import annotations

import threading
from collections.abc import Callable

from opta_exporter.store import ThreadReport


def poll(
    read_once: Callable[[], object],
    wait: Callable[[], float],
    stop: threading.Event,
    report: ThreadReport | None = None,
) -> None:
    """Read at once, then again `wait()` seconds after each read. An exception from a
    read (a body no parser expected, a bug) is counted and logged once per spell by
    `report`, and the next interval reads again: one bad body never ends a source."""
    report = report or ThreadReport(None, threading.current_thread().name)
    while not stop.is_set():
        try:
            read_once()
        except Exception as exc:
            report.failed(exc)
        else:
            report.ok()
        if stop.wait(wait()):
            return
