"""The live view's feed: /api/live's document, and /api/live/events' stream of it.

A viewer costs a thread (its connection's) and, while any is connected, a relay read a
second instead of one per --lmx.relay-interval: so viewers are few (MAX_VIEWERS), the
relay's cadence follows whether anyone watches, and every stream ends when the exporter
stops (`stop`) instead of holding its shutdown up.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.metrics.collector import tables
from opta_exporter.relay.reader import RelayReader
from opta_exporter.store import Store, View
from opta_exporter.web.live import Sent, only_new, snapshot

MAX_VIEWERS = 4  # streams at once: each holds a thread, and a page needs one
TICK = 1.0  # seconds between `live` events
# A burst of changes (a model loading through its states) is at most one `change` event
# per this many seconds, each with the state as it is when sent.
CHANGE_GAP = 0.25

Signature = tuple[str, dict[str, str], dict[str, str]]


def signature(state: LmxState, health: ExporterHealth) -> Signature:
    """What a `change` event is sent for: the connection's state and the models."""
    return health.connection_state, dict(state.loaded), dict(state.readiness)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a figure is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(_finite(document), separators=(",", ":"), allow_nan=False).encode()


def frame(event: str, data: bytes) -> bytes:
    """One SSE event; `data` is one line (compact JSON has no newline)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class LiveFeed:
    def __init__(self, store: Store, relay: RelayReader | None) -> None:
        self._store, self._relay = store, relay
        self._lock = threading.Lock()
        self._viewers_changed = threading.Condition(self._lock)
        self._viewers = 0
        self._stopped = threading.Event()

    def document(self) -> tuple[dict[str, Any], Signature]:
        """The snapshot, from one view of the store (as a scrape takes it)."""
        view: View = self._store.view()
        relay = None if self._relay is None else self._relay.view().families
        resolution = None if self._relay is None else self._relay.interval()
        doc = snapshot(
            view, tables(view.state, view.health, view.now, view.wall), relay, resolution
        )
        return doc, signature(view.state, view.health)

    @property
    def viewers(self) -> int:
        with self._lock:
            return self._viewers

    def join(self) -> bool:
        """Takes a viewer's slot; False when all are taken or the feed has stopped."""
        with self._lock:
            if self._viewers >= MAX_VIEWERS or self._stopped.is_set():
                return False
            self._viewers += 1
            if self._relay is not None and self._viewers == 1:
                self._relay.watch(True)
            self._viewers_changed.notify_all()
            return True

    def leave(self) -> None:
        with self._lock:
            self._viewers -= 1
            if self._relay is not None and self._viewers == 0:
                self._relay.watch(False)
            self._viewers_changed.notify_all()

    def wait_for_viewers(self, count: int, timeout: float) -> bool:
        """Block until exactly `count` viewers are connected (tests wait, never sleep)."""
        with self._viewers_changed:
            return self._viewers_changed.wait_for(lambda: self._viewers == count, timeout)

    def stop(self) -> None:
        """Every stream ends now; no new one starts."""
        self._stopped.set()
        self._store.wake()

    def stream(self) -> Generator[bytes, None, None]:
        """A viewer's events: `live` at once and every TICK, `change` when the signature
        changes (at most one per CHANGE_GAP); ends when the feed stops. The caller has
        joined, and leaves when this ends (Stream). The chart's samples go once each
        (`only_new`): the first event has the whole window, the others what is new."""
        stopped, store, chart = self._stopped, self._store, Sent()
        doc, sent = self.document()
        yield frame("live", encode(only_new(doc, chart)))
        next_tick = time.monotonic() + TICK
        last_change = -math.inf

        def moved(state: LmxState, health: ExporterHealth) -> bool:
            return stopped.is_set() or signature(state, health) != sent

        while not stopped.is_set():
            left = next_tick - time.monotonic()
            changed = store.wait_for(moved, left) if left > 0 else False
            if stopped.is_set():
                return
            now = time.monotonic()
            if changed:
                if stopped.wait(last_change + CHANGE_GAP - now):  # coalesce a burst
                    return
                doc, sent = self.document()
                last_change = time.monotonic()
                yield frame("change", encode(only_new(doc, chart)))
            if time.monotonic() >= next_tick:
                doc, sent = self.document()
                yield frame("live", encode(only_new(doc, chart)))
                next_tick = max(next_tick + TICK, time.monotonic())


class Stream:
    """A WSGI body that gives the viewer's slot back when the server closes it, sent or
    not (a HEAD, a client gone, a stop): a generator not started would skip its
    `finally`."""

    def __init__(self, feed: LiveFeed) -> None:
        self._feed = feed
        self._events = feed.stream()
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._events.close()
            self._feed.leave()
