"""The one lock: LMX state and exporter health, shared by the threads and the scrape.

Writers take the lock for a few dict operations; a scrape takes it only to copy.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


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
            self.state.apply_formats(reading.formats)
            # the formats live (bounded) in the state; the reading need not keep them all
            self.state.diagnostics = replace(reading, formats={})
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
        self,
        state: str,
        backoff: float = 0.0,
        reconnect_reason: str | None = None,
        error: str | None = None,
    ) -> None:
        """`error`: what ended the connection, as its StreamEnded says it (`reason:
        detail`), kept with the time for the live page."""
        with self.lock:
            self.health.connection_state = state
            self.health.backoff_seconds = backoff
            if state == "open":
                self.health.last_activity = self.clock.monotonic()
            if reconnect_reason is not None:
                self.health.reconnects[reconnect_reason] += 1
                error = reconnect_reason if error is None else error
                self.health.last_error, self.health.last_error_wall = error, self.clock.time()
            self._notify()

    def thread(self, name: str) -> ThreadReport:
        """Register a long-lived thread (down until it runs) and return its reporter."""
        with self.lock:
            self.health.threads.setdefault(name, False)
            self.health.thread_errors.setdefault(name, 0.0)
        return ThreadReport(self, name)

    def thread_running(self, name: str, up: bool) -> None:
        with self.lock:
            self.health.threads[name] = up
            self._notify()

    def thread_error(self, name: str) -> None:
        with self.lock:
            self.health.thread_errors[name] = self.health.thread_errors.get(name, 0.0) + 1
            self._notify()

    def ready(self) -> tuple[bool, str]:
        """/-/ready: every thread runs and LMX has been read once; else which is not."""
        with self.lock:
            dead, read = self.health.dead_threads(), self.health.read_lmx()
        if dead:
            return False, "not ready: thread(s) not running: " + ", ".join(dead) + "\n"
        if not read:
            return False, "not ready: LMX not read yet\n"
        return True, "ready\n"

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

    def wake(self) -> None:
        """Wakes every `wait_for` to check its predicate again: one that also waits on
        something outside the store (a stop) is told it happened."""
        with self.lock:
            self.changed.notify_all()

    def _notify(self) -> None:
        """Under the lock. Skipped when nobody waits: notify_all costs on every read."""
        if self._waiters:
            self.changed.notify_all()

    def view(self) -> View:
        self.sync()
        with self.lock:
            state, health = self.state.copy(), self.health.copy()
        return View(state, health, self.clock.monotonic(), self.clock.time())


def describe(exc: BaseException) -> str:
    """An exception as one short line: its type and the start of its text (which may
    quote a hostile body, so it is cut and escaped)."""
    text = str(exc)
    detail = repr(text[:120])[1:-1] + ("..." if len(text) > 120 else "")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class ThreadReport:
    """One long-lived thread's reports to the store: whether it runs, and each error
    that reached its loop (counted in opta_exporter_thread_errors_total). The log says
    it once per spell: the first error, a different one, and the recovery; not a
    traceback per interval."""

    def __init__(self, store: Store | None, name: str) -> None:
        self.store = store  # None: log only (a loop run outside the daemon)
        self.name = name
        self._spell: str | None = None  # the last error's description while failing

    def running(self, up: bool) -> None:
        if self.store is not None:
            self.store.thread_running(self.name, up)

    def failed(self, exc: BaseException) -> None:
        if self.store is not None:
            self.store.thread_error(self.name)
        reason = describe(exc)
        if reason != self._spell:
            log.warning("thread %s: unexpected error, counted and survived: %s", self.name, reason)
            log.debug("thread %s: the error's traceback", self.name, exc_info=exc)
        self._spell = reason

    def ok(self) -> None:
        """A pass of the loop went through: a spell of errors is over."""
        if self._spell is not None:
            log.info("thread %s: works again", self.name)
            self._spell = None
