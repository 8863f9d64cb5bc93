"""The consumer thread: requests -> SSE parser -> store, reconnecting through tenacity
with the policy of backoff.py."""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections.abc import Callable

import requests
import tenacity
from urllib3.exceptions import DecodeError, HTTPError

from opta_exporter.config import Config
from opta_exporter.core.events import EventError
from opta_exporter.lmx.client import Answers, LmxClient
from opta_exporter.store import Store
from opta_exporter.stream.backoff import Backoff
from opta_exporter.stream.pacer import Pacer
from opta_exporter.stream.sse import SseParser, header_safe
from opta_exporter.stream.transport import (
    StreamEnded,
    check_response,
    chunks,
    is_timeout,
    socket_of,
)

log = logging.getLogger(__name__)

SUBSCRIBER_LIMIT_HINT_AFTER = 3
FLUSH_TIMEOUT = 0.25  # the most a scrape waits for a batching stream thread


class StreamConsumer:
    def __init__(
        self,
        config: Config,
        store: Store,
        resync: Callable[[], int | None],
        session: requests.Session,
        stop: threading.Event,
        *,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] = random.random,
        answers: Answers | None = None,
    ) -> None:
        self._config = config
        self._store = store
        # reads LMX's snapshots into the store (None when it could not): the stream only
        # reports open once the state it resumes from has been checked
        self._resync = resync
        self._lmx = LmxClient.from_config(config, session, answers)
        self._stop = stop
        self._sleep = sleep or self._nap
        self._backoff = Backoff(config.backoff_base, config.backoff_cap, rng)
        self._last_event_id: str | None = None
        self._resp: requests.Response | None = None
        self._resp_lock = threading.Lock()
        self._interrupt_reason: str | None = None
        self._last_logged: str | None = None
        self._logged_errors: set[str] = set()
        self._empty_closes = 0
        self.pacer = Pacer(config.batch_window) if config.batch_window > 0 else None

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """From a reader of the state: have the bytes LMX has sent so far applied first."""
        return self.pacer is None or self.pacer.flush(timeout)

    def _nap(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop request cuts the backoff short

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        assert retry_state.outcome is not None
        ended = retry_state.outcome.exception()
        assert isinstance(ended, StreamEnded)
        wait = self._backoff.next_wait(ended)
        state = "auth_failed" if ended.reason == "auth" else "backoff"
        self._store.set_connection(state, wait, ended.reason, str(ended))
        message = f"event stream {ended}; retrying in {wait:.1f}s"
        if ended.reason != self._last_logged:
            (log.warning if ended.reason == "auth" else log.info)(message)
        else:
            log.debug(message)
        self._last_logged = ended.reason
        return wait

    def run(self) -> None:
        """Thread body: never gives up while the daemon runs."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(StreamEnded),
            wait=self._wait,
            stop=tenacity.stop_when_event_set(self._stop),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            retrying(self._attempt)
        except StreamEnded:
            pass  # only when stopping
        finally:
            self._store.set_connection("stopped")

    # -- one connection -----------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        # identity: a compressed event stream buys nothing and a decompressor is one more
        # thing a hostile body can blow up.
        headers = {"Accept-Encoding": "identity", "Cache-Control": "no-cache"}
        # an empty id says "forget it" (WHATWG: no header); an unsendable one never gets
        # here (the parser keeps the previous), else every reconnect would fail
        if self._last_event_id and header_safe(self._last_event_id):
            headers["Last-Event-ID"] = self._last_event_id
        return headers

    def _attempt(self) -> None:
        """One connection; whatever goes wrong ends as StreamEnded, never as a dead thread."""
        if self._stop.is_set():
            return
        self._store.set_connection("connecting")
        try:
            self._connect_and_consume()
        except StreamEnded:
            raise
        except Exception as exc:  # a bug or a body no reader expected: reconnect, say what
            log.debug("event stream: unexpected error", exc_info=True)
            raise StreamEnded("protocol", f"unreadable stream ({type(exc).__name__})") from None

    def _connect_and_consume(self) -> None:
        cfg = self._config
        try:
            # the read timeout is the stale timeout: a silent stream ends as a timeout
            resp = self._lmx.open(
                "/admin/events",
                accept="text/event-stream",
                read_timeout=cfg.stale_timeout,
                headers=self._headers(),
            )
        except requests.ConnectTimeout:
            raise StreamEnded("timeout", "connect timed out") from None
        except requests.RequestException as exc:
            raise StreamEnded("connect_error", f"cannot connect ({type(exc).__name__})") from None
        # urllib3 pools the connection once a chunked body ends, though LMX closes it;
        # reusing it would fail the next attempt. An event stream's connection dies with it.
        connection = getattr(resp.raw, "connection", None)
        try:
            with resp:
                check_response(resp, self._store.clock.time())
                with self._resp_lock:
                    self._resp, self._interrupt_reason = resp, None
                # A resync runs before up returns to 1, so no unloaded model lingers; a
                # failed one must not let up return to 1 on state it could not check.
                if self._resync() is None:
                    raise StreamEnded("http_error", "no snapshot after connecting")
                self._store.set_connection("open")
                if self._last_logged != "open":
                    log.info("event stream open at %s", self._config.lmx_url)
                    self._last_logged = "open"
                self._consume(resp)
        finally:
            with self._resp_lock:
                self._resp = None
            if connection is not None:
                connection.close()

    def _consume(self, resp: requests.Response) -> None:
        got_event = False
        parser = SseParser()
        parser.last_event_id = self._last_event_id  # survives reconnects, as in EventSource
        clock, stale = self._store.clock, self._config.stale_timeout
        last_event = clock.monotonic()
        oversize = bad_ids = 0
        reads = chunks(resp, self.pacer)
        try:
            for chunk in reads:
                self._empty_closes = 0
                events = parser.feed(chunk)
                # id: and retry: count even in a block without data (WHATWG)
                self._last_event_id = parser.last_event_id
                if parser.retry_ms is not None:  # a floor for the next wait only
                    self._backoff.server_retry = parser.retry_ms / 1000.0
                    parser.retry_ms = None
                for _ in range(parser.oversize - oversize):
                    self._log_error(self._store.count_error("oversize", "event over 1 MiB"))
                oversize = parser.oversize
                if parser.bad_ids != bad_ids:
                    self._bad_ids(parser.bad_ids - bad_ids, parser.last_bad_id or "")
                    bad_ids = parser.bad_ids
                if events:
                    got_event, last_event = True, clock.monotonic()
                    for error in self._store.ingest_events(events):
                        self._log_error(error)
                elif clock.monotonic() - last_event > stale:
                    # bytes (comments, an endless line) but no event: as dead as silence
                    raise StreamEnded("stale", f"no event for {stale:.0f}s", healthy=got_event)
        except (requests.RequestException, HTTPError, OSError) as exc:
            if self._stop.is_set() or self._interrupt_reason:
                pass
            elif isinstance(exc, DecodeError):  # compressed though we asked for identity
                raise StreamEnded("protocol", "undecodable body", healthy=got_event) from None
            elif is_timeout(exc):
                raise StreamEnded(
                    "stale", f"no event for {stale:.0f}s", healthy=got_event
                ) from None
            else:
                raise StreamEnded(
                    "eof", f"connection broken ({type(exc).__name__})", healthy=got_event
                ) from None
        finally:
            # now, not whenever a traceback lets go of it: a scrape must not wait on a
            # connection that is over
            with contextlib.suppress(Exception):
                getattr(reads, "close", lambda: None)()
        if self._stop.is_set():
            return
        reason = self._interrupt_reason or "eof"
        if reason == "dropped":
            detail = "LMX stopped delivering events to this subscription"
        elif got_event:
            detail = "LMX closed the stream"
        else:
            detail = "LMX closed the stream before any byte"
            self._closed_before_any_byte()
        raise StreamEnded(reason, detail, healthy=got_event)

    def _closed_before_any_byte(self) -> None:
        """LMX answers 200 and closes at once when its 50 subscriber slots are taken:
        after a few in a row, say so once (the backoff keeps growing meanwhile)."""
        self._empty_closes += 1
        if self._empty_closes == SUBSCRIBER_LIMIT_HINT_AFTER:
            log.warning(
                "LMX closed the event stream before any byte %d times in a row: it may be "
                "at its subscriber limit (49 outside clients); backing off",
                self._empty_closes,
            )

    def _bad_ids(self, count: int, latest: str) -> None:
        detail = (
            f"id {latest[:64]!a} cannot be sent back as Last-Event-ID (a character "
            "outside Latin-1, a control character or a leading space); ignored, the "
            "previous id kept"
        )
        for _ in range(count):
            self._log_error(self._store.count_error("bad_id", detail))

    def _log_error(self, error: EventError) -> None:
        """Once per reason: a flood of bad events must not become a flood of log lines."""
        if error.reason not in self._logged_errors:
            self._logged_errors.add(error.reason)
            log.warning("bad event counted as %s: %s", error.reason, error.detail)

    def interrupt(self, reason: str | None = None) -> None:
        """From another thread: end the current stream now (stop, or a zombie found).
        Closing alone would not wake a blocked recv; shutting the socket down does."""
        with self._resp_lock:
            resp = self._resp
            if resp is None:
                return
            self._interrupt_reason = reason
            sock = socket_of(resp)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
