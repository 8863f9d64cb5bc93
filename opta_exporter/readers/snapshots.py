"""/admin/status + /admin/memory -> Snapshot -> reconciled state.

LMX replays nothing and silently drops slow subscribers, so the state built from events
is only trusted as far as a snapshot confirms it: on every (re)connect and on an interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import requests

from opta_exporter.config import Config
from opta_exporter.core.snapshot import parse_snapshot
from opta_exporter.core.state import Snapshot
from opta_exporter.lmx.client import Answers, LmxClient, LmxError
from opta_exporter.store import Store, ThreadReport

log = logging.getLogger(__name__)
CONFIRM_AFTER = 1.0  # seconds before a disagreeing snapshot is read again


class Snapshotter:
    """Reads both endpoints and reconciles; one at a time (the consumer's connect-time
    resync and the interval loop may meet)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        session: requests.Session,
        answers: Answers | None = None,
    ) -> None:
        self._lmx = LmxClient.from_config(config, session, answers)
        self._store = store
        self._lock = threading.Lock()
        self._last_error: str | None = None

    def fetch(self) -> Snapshot:
        """Both reads, each reported as its own source; the first failure is raised. A
        body that breaks the JSON decoder itself (RecursionError at 100k levels) fails
        its source too and is raised as it is, for the thread's loop to count."""
        bodies: dict[str, dict[str, Any]] = {}
        error: LmxError | None = None
        for source in ("status", "memory"):
            try:
                bodies[source] = self._lmx.read_json(f"/admin/{source}")
            except LmxError as exc:
                error = error or exc
            except Exception:
                self._store.source_read(source, False)
                raise
            self._store.source_read(source, source in bodies)
        if error is not None:
            raise error
        return parse_snapshot(bodies["status"], bodies["memory"])

    def look(self) -> str:
        """One read: `agreed` (applied at once, as a resync: the model set is unchanged,
        so there is nothing to confirm and no second read), `disagrees` (nothing applied:
        confirm a moment later) or `failed` (the resync that follows says why, once)."""
        with self._lock:
            since = self._store.seq()
            try:
                snap = self.fetch()
            except LmxError:
                return "failed"
            if self._store.disagrees(snap, since):
                return "disagrees"
            self._store.reconcile(snap, since)
            if self._last_error is not None:
                log.info("snapshot works again")
                self._last_error = None
            return "agreed"

    def resync(self) -> int | None:
        """Returns the drift (models corrected), or None when LMX could not be read."""
        with self._lock:
            since = self._store.seq()
            try:
                snap = self.fetch()
            except Exception as exc:
                self._store.resync_failed()
                if not isinstance(exc, LmxError):
                    raise  # not LMX's answer but what it did to us: the caller counts it
                if not exc.overloaded:  # a spell of shedding is said once (lmx/shedding.py)
                    if str(exc) != self._last_error:
                        log.warning("snapshot failed: %s", exc)
                    self._last_error = str(exc)
                return None
            if self._last_error is not None:
                log.info("snapshot works again")
                self._last_error = None
            return self._store.reconcile(snap, since)


def snapshot_loop(
    snapshotter: Snapshotter,
    interval: float,
    stop: threading.Event,
    on_drift: Callable[[int], None],
    report: ThreadReport | None = None,
) -> None:
    """Thread body: a drift seen while the stream is open means events were lost.

    A model event LMX published just before it answered the snapshot may still be on
    the wire; so a snapshot that disagrees is read again a moment later, and only what
    still disagrees then counts as drift (and replaces the subscription). An exception
    (a body the decoder cannot take) is counted by `report` and the next interval reads
    again: the resyncs and the zombie cure must not stop for good.
    """
    report = report or ThreadReport(None, threading.current_thread().name)
    second_look = min(CONFIRM_AFTER, interval / 2)
    while not stop.wait(interval):
        try:
            seen = snapshotter.look()
            if seen == "agreed":
                report.ok()
                continue
            if seen == "disagrees" and stop.wait(second_look):
                return
            drift = snapshotter.resync()
            if drift:
                on_drift(drift)
        except Exception as exc:
            report.failed(exc)
        else:
            report.ok()
