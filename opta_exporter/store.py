"""The one lock: LMX state and exporter health, shared by the threads and the scrape.

Writers take the lock for a few dict operations; a scrape takes it only to copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from opta_exporter.core.clock import Clock
from opta_exporter.core.events import ErrorReason, EventError, SseEvent
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.ingest import ingest
from opta_exporter.core.readings import DiagnosticsReading, Download, HealthReading
from opta_exporter.core.state import LmxState, Snapshot
from opta_exporter.core.throughput import TokenCount


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _no_sync() -> bool:
    return True


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class View:
    state: LmxState
    health: ExporterHealth
    now: float  # monotonic, to judge staleness
    wall: float


class Store:
    def __init__(self, state: LmxState, health: ExporterHealth, clock: Clock | None = None) -> None:
        self.lock = threading.Lock()
        # Notified on every change, so tests and tools wait for a state, never sleep.
        self.changed = threading.Condition(self.lock)
        self._waiters = 0
        self.state = state
        self.health = health
        self.clock: Clock = clock or SystemClock()
        # Called before the state is read for someone outside (a scrape, a snapshot):
        # the stream thread may be batching its reads (pacer.py), and they must see
        # what LMX has already sent. The daemon sets it to the stream's flush.
        self.sync: Callable[[], object] = _no_sync

    def ingest_events(self, events: Sequence[SseEvent]) -> list[EventError]:
        """One lock per read, not per event: a chunk often carries several."""
        wall, mono = self.clock.time(), self.clock.monotonic()
        errors = []
        with self.lock:
            self.health.last_event_wall = wall
            self.health.last_activity = mono
            state = self.state
            for event in events:
                error = ingest(state, event.event, event.data, wall)
                if error is not None:
                    errors.append(error)
            self._notify()
        return errors

    def ingest(self, name: str, data: str | bytes) -> EventError | None:
        errors = self.ingest_events([SseEvent(name, _as_bytes(data), None)])
        return errors[0] if errors else None

    def count_error(self, reason: ErrorReason, detail: str) -> EventError:
        with self.lock:
            self.state.event_errors[reason] += 1
            self._notify()
        return EventError(reason, detail)

    def seq(self) -> int:
        """Where the state stands, after what LMX has sent so far (a snapshot compares)."""
        self.sync()
        with self.lock:
            return self.state.seq

    def reconcile(self, snap: Snapshot, since_seq: int) -> int:
        wall = self.clock.time()
        with self.lock:
            drift = self.state.reconcile(snap, wall, since_seq)
            self.health.resyncs["success"] += 1
            self._notify()
            return drift

    def disagrees(self, snap: Snapshot, since_seq: int) -> bool:
        with self.lock:
            return self.state.disagrees(snap, since_seq)

    def resync_failed(self) -> None:
        with self.lock:
            self.health.resyncs["failure"] += 1
            self._notify()

    def source_read(self, source: str, ok: bool) -> None:
        """A read of `source` (status, memory, health, relay) ended; `ok` if it succeeded."""
        with self.lock:
            old = self.health.sources.get(source)
            if old is not None:
                self.health.sources[source] = (
                    replace(
                        old,
                        up=True,
                        last_success_wall=self.clock.time(),
                        last_success_mono=self.clock.monotonic(),
                    )
                    if ok
                    else replace(old, up=False)
                )
            self._notify()

    def count_tokens(self, count: TokenCount) -> None:
        """A relay read's token counter: the throughput window's next sample."""
        with self.lock:
            self.state.count_tokens(count)
            self._notify()

    def set_health(self, reading: HealthReading) -> None:
        with self.lock:
            self.state.health = reading
            self._notify()

    def set_diagnostics(self, reading: DiagnosticsReading) -> None:
        with self.lock:
            self.state.diagnostics = reading
            self.state.apply_formats(reading.formats)
            self._notify()

    def reconcile_readiness(self, readiness: dict[str, str], since_seq: int) -> int:
        with self.lock:
            drift = self.state.reconcile_readiness(readiness, since_seq)
            self._notify()
            return drift

    def set_downloads(self, downloads: tuple[Download, ...]) -> None:
        with self.lock:
            self.state.apply_downloads(downloads)
            self._notify()

    def set_quantize(self, jobs: dict[str, float]) -> None:
        with self.lock:
            self.state.quantize_listed = jobs
            self._notify()

    def set_shedding(self, shedding: bool) -> None:
        with self.lock:
            self.state.shedding = shedding
            self._notify()

    def set_connection(
        self, state: str, backoff: float = 0.0, reconnect_reason: str | None = None
    ) -> None:
        with self.lock:
            self.health.connection_state = state
            self.health.backoff_seconds = backoff
            if state == "open":
                self.health.last_activity = self.clock.monotonic()
            if reconnect_reason is not None:
                self.health.reconnects[reconnect_reason] += 1
            self._notify()

    def wait_for(
        self, predicate: Callable[[LmxState, ExporterHealth], bool], timeout: float
    ) -> bool:
        """Block until `predicate(state, health)` holds (checked after each change)."""
        with self.changed:
            self._waiters += 1
            try:
                return self.changed.wait_for(lambda: predicate(self.state, self.health), timeout)
            finally:
                self._waiters -= 1

    def _notify(self) -> None:
        """Under the lock. Skipped when nobody waits: notify_all costs on every read."""
        if self._waiters:
            self.changed.notify_all()

    def view(self) -> View:
        self.sync()
        with self.lock:
            state, health = self.state.copy(), self.health.copy()
        return View(state, health, self.clock.monotonic(), self.clock.time())
