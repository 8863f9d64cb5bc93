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
from opta_exporter.store import Store

log = logging.getLogger(__name__)
CONFIRM_AFTER = 1.0  # seconds before a disagreeing snapshot is read again


class SnapshotError(Exception):
    """A snapshot could not be read; the message is safe to log (no key, no URL query)."""


class Snapshotter:
    """Reads both endpoints and reconciles; one at a time (the consumer's connect-time
    resync and the interval loop may meet)."""

    def __init__(self, config: Config, store: Store, session: requests.Session) -> None:
        self._config = config
        self._store = store
        self._session = session
        self._lock = threading.Lock()
        self._last_error: str | None = None

    def _get(self, path: str) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self._config.admin_key is not None:
            headers["X-Admin-Key"] = self._config.admin_key
        try:
            resp = self._session.get(
                self._config.lmx_url + path,
                headers=headers,
                timeout=(self._config.connect_timeout, 10.0),
                allow_redirects=False,  # requests would carry X-Admin-Key to the new place
            )
        except requests.Timeout:
            raise SnapshotError(f"{path}: timed out") from None
        except requests.RequestException as exc:
            raise SnapshotError(f"{path}: {type(exc).__name__}") from None
        with resp:
            if resp.status_code in (401, 403):
                raise SnapshotError(f"{path}: HTTP {resp.status_code}, admin key refused")
            if resp.status_code != 200:
                raise SnapshotError(f"{path}: HTTP {resp.status_code}")
            try:
                body = resp.json()
            except ValueError:
                raise SnapshotError(f"{path}: body is not JSON") from None
        if not isinstance(body, dict):
            raise SnapshotError(f"{path}: body is not a JSON object")
        return body

    def fetch(self) -> Snapshot:
        return parse_snapshot(self._get("/admin/status"), self._get("/admin/memory"))

    def disagrees(self) -> bool:
        """A read-only look: would a resync now change the model set?"""
        with self._lock:
            since = self._store.seq()
            try:
                snap = self.fetch()
            except SnapshotError:
                return False  # the resync that follows says why, once
            return self._store.disagrees(snap, since)

    def resync(self) -> int | None:
        """Returns the drift (models corrected), or None when LMX could not be read."""
        with self._lock:
            since = self._store.seq()
            try:
                snap = self.fetch()
            except SnapshotError as exc:
                self._store.resync_failed()
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
) -> None:
    """Thread body: a drift seen while the stream is open means events were lost.

    A model event LMX published just before it answered the snapshot may still be on
    the wire; so a snapshot that disagrees is read again a moment later, and only what
    still disagrees then counts as drift (and replaces the subscription).
    """
    second_look = min(CONFIRM_AFTER, interval / 2)
    while not stop.wait(interval):
        if snapshotter.disagrees() and stop.wait(second_look):
            return
        drift = snapshotter.resync()
        if drift:
            on_drift(drift)
