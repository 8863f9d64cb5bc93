"""The thread body every interval reader shares: read, wait, until stopped; never dies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def poll(read_once: Callable[[], object], wait: Callable[[], float], stop: threading.Event) -> None:
    """Read at once, then again `wait()` seconds after each read. An exception from a
    read is a bug, not LMX's fault: it is logged with its traceback and the next interval
    reads again, so one bad body can never end a source for good."""
    while not stop.is_set():
        try:
            read_once()
        except Exception:
            log.exception("unexpected error in %s", threading.current_thread().name)
        if stop.wait(wait()):
            return
