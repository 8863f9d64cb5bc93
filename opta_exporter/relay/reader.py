"""LMX's own /admin/metrics, read in the background and re-exposed under LMX's names.

A running LMX reports requests only there, behind an `X-Admin-Key` header older
Prometheus cannot send, in text that breaks on an unusual model id (see relay_parse).
The read runs on its own thread and interval, never inside a scrape: a slow LMX must not
make /metrics slow. Relayed families are shown only while the last good read is at most
2 intervals old, as every polled figure (core/health.py), so a dead LMX disappears
(`absent()` fires) instead of a flat line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import requests

from opta_exporter.config import Config
from opta_exporter.core.clock import Clock
from opta_exporter.core.health import STALE_INTERVALS
from opta_exporter.core.labels import ModelCap
from opta_exporter.core.throughput import TokenCount
from opta_exporter.lmx.client import Answers, LmxClient, LmxError
from opta_exporter.relay.parse import (
    MAX_SERIES,
    RelayFamily,
    cap_models,
    model_token_counts,
    parse_lmx_metrics,
    token_counts,
)
from opta_exporter.store import SystemClock, ThreadReport

log = logging.getLogger(__name__)

PATH = "/admin/metrics"
# LMX has about ten families with a `model` or `client` label; past this many distinct
# names, a family's capped series are refused (counted as `cap`).
MAX_CAPPED_FAMILIES = 1_000
# The most bytes one read takes: a body past it is refused whole (`too_large`). LMX's
# own is ~150 KB at 100 models. A constant, not a flag: no LMX comes near it.
MAX_BYTES = 8 * 1024 * 1024
# Seconds between reads while someone watches the live view (web/events.py): its chart
# wants a point a second, which nobody pays for while nobody watches.
LIVE_INTERVAL = 1.0


@dataclass(frozen=True)
class RelayView:
    """What a scrape needs, copied under the reader's lock."""

    families: Mapping[str, RelayFamily]  # empty unless the last good read is fresh
    last_success_wall: float | None
    reads: Mapping[str, int] = field(default_factory=dict)
    repaired: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)


class RelayReader:
    """Fetches and keeps the last good read; one read at a time."""

    def __init__(
        self,
        config: Config,
        session: requests.Session,
        clock: Clock | None = None,
        answers: Answers | None = None,
        report: Callable[[str, bool], object] = lambda source, ok: None,
        *,
        on_tokens: Callable[[TokenCount], object] = lambda count: None,
    ) -> None:
        self._config = config
        self._on_tokens = on_tokens  # each good read's token counter: the window's source
        self._lmx = LmxClient.from_config(config, session, answers)
        self._report = report  # each read's outcome, as the source `relay`
        self._clock: Clock = clock or SystemClock()
        self._read_lock = threading.Lock()
        self._lock = threading.Lock()
        # Notified after every read, so tests wait for a read instead of sleeping.
        self.changed = threading.Condition(self._lock)
        # LMX's family names key the cap: bounded, so new names each read cannot grow it
        self._cap = ModelCap(config.max_models, max_metrics=MAX_CAPPED_FAMILIES)
        self._families: Mapping[str, RelayFamily] = {}
        self._last_mono: float | None = None
        self._last_wall: float | None = None
        self._reads = {"success": 0, "failure": 0}
        self._repaired = 0
        self._dropped = {"unparseable": 0, "cap": 0, "series_cap": 0, "too_large": 0}
        self._last_error: str | None = None
        self._last_losses = (0, 0, 0)
        self._watched = False
        self._wake = threading.Event()  # the wait between reads ends early: cadence or stop

    def read_once(self) -> bool:
        """One read; True when it succeeded. Never raises for LMX's or the network's
        faults; anything else is a failed read too, raised for the thread to count."""
        with self._read_lock:
            try:
                return self._read()
            except Exception:
                with self._lock:
                    self._reads["failure"] += 1
                    self.changed.notify_all()
                self._report("relay", False)
                raise

    def _read(self) -> bool:
        try:
            text = self._lmx.read_text(PATH, max_bytes=MAX_BYTES)
        except LmxError as exc:
            if exc.status == 200 and exc.detail.startswith("body over"):
                # the body is refused whole: its samples were never read, so the read
                # itself is what is counted
                with self._lock:
                    self._dropped["too_large"] += 1
                self._failed(f"body over the relay's cap of {MAX_BYTES} bytes, refused")
            else:
                self._failed(exc.detail, said=exc.overloaded)
            self._report("relay", False)
            return False
        parse = parse_lmx_metrics(text, MAX_SERIES)
        del text  # the 8 MiB of it, before the families are built
        if parse.sample_count == 0 and parse.dropped:
            reason = f"{parse.dropped} unreadable line(s), no metric: a proxy's page?"
            self._failed(reason, parse.dropped)
            self._report("relay", False)
            return False
        capped, refused = cap_models(parse, self._cap)
        self._log_losses(parse.dropped, refused, parse.capped)
        mono, wall = self._clock.monotonic(), self._clock.time()
        with self._lock:
            self._families = capped.families
            self._last_mono, self._last_wall = mono, wall
            self._reads["success"] += 1
            self._repaired += parse.repaired
            self._dropped["unparseable"] += parse.dropped
            self._dropped["cap"] += refused
            self._dropped["series_cap"] += parse.capped
            self.changed.notify_all()
        self._report("relay", True)
        tokens, uptime = token_counts(parse)  # before the cap: the total is unlabelled
        if tokens is not None:
            per_model = model_token_counts(capped)
            self._on_tokens(TokenCount(mono, wall, tokens, uptime, per_model))
        if self._last_error is not None:
            log.info("relay: reading LMX's %s works again", PATH)
            self._last_error = None
        return True

    def _failed(self, reason: str, unreadable: int = 0, *, said: bool = False) -> None:
        """`said`: someone else logs it (load shedding, once a spell: lmx/shedding.py)."""
        with self._lock:
            self._reads["failure"] += 1
            self._dropped["unparseable"] += unreadable
            self.changed.notify_all()
        if said:
            return
        if reason != self._last_error:
            log.warning("relay: reading LMX's %s failed: %s", PATH, reason)
        self._last_error = reason

    def _log_losses(self, unreadable: int, refused: int, cut: int) -> None:
        """Once per change, not per read: the same defect every 15 s is one message."""
        losses = (unreadable, refused, cut)
        if losses != self._last_losses and any(losses):
            log.warning(
                "relay: %d line(s) of LMX's %s unreadable (dropped), %d sample(s) over the "
                "model cap of %d (dropped), %d sample(s) past the series cap of %d (dropped)",
                unreadable,
                PATH,
                refused,
                self._config.max_models,
                cut,
                MAX_SERIES,
            )
        self._last_losses = losses

    def run(
        self,
        stop: threading.Event,
        after_read: Callable[[], object] = bool,
        report: ThreadReport | None = None,
    ) -> None:
        """Thread body: read, hand over (`after_read`: the text for the next scrape), wait
        an interval, until `stop` is set; whoever sets it calls `wake()` too, or the
        thread ends only when its wait does (one wait serves both the stop and a new
        viewer's cadence, without waking the thread on a timer). Never raises: an
        unexpected error is counted and logged once per spell by `report`, and the next
        interval reads again."""
        report = report or ThreadReport(None, threading.current_thread().name)
        while not stop.is_set():
            self._wake.clear()
            try:
                self.read_once()
                after_read()
            except Exception as exc:
                report.failed(exc)
            else:
                report.ok()
            if stop.is_set():
                return
            self._wake.wait(self.interval())  # wake(): a new cadence, or the stop

    def interval(self) -> float:
        """Seconds between reads now: LIVE_INTERVAL while watched (unless the configured
        interval is shorter), the configured one otherwise."""
        configured = self._config.relay_interval
        return min(configured, LIVE_INTERVAL) if self._watched else configured

    def watch(self, watched: bool) -> None:
        """Someone is watching the live view (or no longer is): read at its cadence from
        now on, the first read at once."""
        if watched != self._watched:
            self._watched = watched
            self.wake()

    def wake(self) -> None:
        """Ends the wait between reads now; `run`'s caller calls it after setting `stop`."""
        self._wake.set()

    def wait_for_reads(self, count: int, timeout: float) -> bool:
        """Block until `count` reads (of any outcome) are done."""
        with self.changed:
            return self.changed.wait_for(lambda: sum(self._reads.values()) >= count, timeout)

    def view(self) -> RelayView:
        now = self._clock.monotonic()
        with self._lock:
            last = self._last_mono
            fresh = last is not None and now - last <= STALE_INTERVALS * self._config.relay_interval
            return RelayView(
                self._families if fresh else {},
                self._last_wall,
                dict(self._reads),
                self._repaired,
                dict(self._dropped),
            )
