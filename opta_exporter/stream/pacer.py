"""How the stream thread waits for LMX's bytes, and how a reader of the state gets them
applied first.

Waking a Python thread costs far more CPU on a small VM with cold caches than handling
the event it woke for (bench/README.md). So once events come faster than one per
window, the thread waits out the window after each read, or until BATCH_BYTES have
arrived (SO_RCVLOWAT: the kernel wakes it then, so the socket never holds more than
~40 events and LMX's 100-event queue never fills), whichever comes first. A quiet stream
(heartbeats, a lone event) is read the moment a byte arrives, and a read of BATCH_BYTES
or more is followed at once by the next (a burst is read at full speed, tail included).

Whoever reads the state (a scrape, a snapshot) calls `flush()` first: a pausing thread
is woken, reads what has arrived and applies it before `flush()` returns, so /metrics
never lags the wire by the window; only readers that do not ask (a heartbeat's
timestamp) see the batching. A thread that reads bytes as they come holds nothing back,
and a pause younger than FRESH holds nothing older, so a scrape never queues behind a
burst (where pauses end within milliseconds on BATCH_BYTES).
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, Protocol

READ_SIZE = 65536
BATCH_BYTES = 8192  # ~40 LMX events, well under any socket buffer
FRESH = 0.01  # a batch younger than this is not worth a scrape's wait (the target is 50 ms)

# What the reading thread is doing, as `flush` sees it: waiting on a quiet stream (all
# that came is applied), pausing (bytes may be held back), applying what a pause held,
# or draining a stream that keeps it busy (it applies as fast as it can; waiting on it
# would only slow the scrape).
QUIET, PAUSE, HELD, DRAIN = "quiet", "pause", "held", "drain"


class Poller(Protocol):
    """select.poll's object, or a test's spy on it."""

    def register(self, fd: Any, eventmask: int = ..., /) -> None: ...
    def poll(self, timeout: float | None = ..., /) -> list[tuple[int, int]]: ...


class Pacer:
    """Owned by one stream thread (`reads`); any other thread may call `flush`."""

    def __init__(
        self,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        poller: Callable[[], Poller] = select.poll,
    ) -> None:
        self.window = window
        self._clock = clock
        self._poller = poller
        self._cond = threading.Condition(threading.Lock())
        # Written by the reading thread alone, without the lock (one store; a flush that
        # reads it a moment late at worst pokes a reader that already woke).
        self._state = QUIET
        # the reading thread while a connection is read (None: nothing to flush); it
        # must never wait on itself
        self._reader: int | None = None
        self._asked = 0  # flushes requested
        self._done = 0  # flushes answered: every byte read before they were asked is applied
        self._wake: int | None = None  # write end of the pipe that cuts a pause short
        self._poked = False
        self._watchers = 0
        self._paused_at = -math.inf  # when the batch now held began to wait

    def flush(self, timeout: float) -> bool:
        """Return once the bytes held back by a pause are applied (True), or after
        `timeout` if the stream thread did not get there (False: the caller shows what
        is applied)."""
        with self._cond:
            state = self._state
            reader = self._reader
            if reader is None or reader == threading.get_ident() or state in (QUIET, DRAIN):
                return True
            if self._clock() - self._paused_at < FRESH:
                return True  # a busy stream's short pause: what it holds is milliseconds old
            self._asked += 1
            target = self._asked
            if state == PAUSE and not self._poked and self._wake is not None:
                self._poked = True
                os.write(self._wake, b"\0")
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def _answer(self, asked: int) -> None:
        """Every read up to now is applied: flushes asked before the last read are done."""
        if asked > self._done:
            with self._cond:
                self._done = max(self._done, asked)
                self._cond.notify_all()

    def _enter(self, state: str) -> None:
        self._state = state
        if self._watchers:
            with self._cond:
                self._cond.notify_all()

    def wait_for_state(self, state: str, timeout: float) -> bool:
        """For tests and tools: block until the reader is in `state`."""
        with self._cond:
            self._watchers += 1
            try:
                return self._cond.wait_for(lambda: self._state == state, timeout)
            finally:
                self._watchers -= 1

    def reads(
        self, sock: socket.socket, *, just_read: bool = False
    ) -> Generator[bytes, None, None]:
        """The socket's bytes, paced; TimeoutError after the socket's own timeout of
        silence (what requests set from --lmx.stale-timeout), as a plain recv would.
        `just_read`: the caller has just read from this connection (its buffer)."""
        stale = sock.gettimeout()
        quiet_ms = None if stale is None else max(1.0, 1000.0 * stale)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        sock.setblocking(False)  # we poll ourselves; a timeout would poll again per recv
        poller = self._poller()
        poller.register(sock, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        with self._cond:
            self._wake, self._poked = wake_w, False
            self._reader, self._done = threading.get_ident(), self._asked
        self._enter(DRAIN)
        lowat, busy, expired = 1, False, False
        last_data = self._clock() if just_read else -math.inf
        try:
            while True:
                asked = self._asked  # flushes this read will answer
                try:
                    data: bytes | None = sock.recv(READ_SIZE)
                except BlockingIOError:  # a pause that caught nothing, or a poke
                    data = None
                if data:
                    now = self._clock()
                    busy, expired = busy or now - last_data < self.window, False
                    last_data = now
                    yield data
                    self._answer(asked)
                    if len(data) >= BATCH_BYTES:
                        continue  # a burst: read on at full speed, its tail included
                elif data is None:
                    self._answer(asked)
                    busy = busy and not expired  # a whole window passed dry: batch over
                else:
                    return
                if self._asked > self._done:
                    continue  # a flush came while applying: read what came since first
                # Wait: for any byte on a quiet stream; on a busy one for the rest of
                # the window or BATCH_BYTES, whichever comes first (bytes left from the
                # last read wait with the rest).
                timeout: float | None = quiet_ms
                want = BATCH_BYTES if busy else 1
                if busy:
                    # all that came before is read: what this pause holds is younger
                    self._paused_at = now = self._clock()
                    timeout = 1000.0 * max(0.0, last_data + self.window - now)
                if want != lowat:
                    lowat = _set_lowat(sock, want)
                self._enter(PAUSE if busy else QUIET)
                ready = poller.poll(timeout)
                self._enter(HELD if busy else DRAIN)
                if not ready and not busy:
                    raise TimeoutError(f"no byte for {stale}s")
                expired = not ready
                if ready and any(fd == wake_r for fd, _ in ready):
                    with self._cond:
                        self._poked = False
                    _drain(wake_r)
        finally:
            with self._cond:
                # Nothing more will be read, so nobody waits for it; and no flush writes
                # to the pipe after this (a newer connection's pipe is not ours to reset).
                if self._wake == wake_w:
                    self._state, self._wake, self._reader = QUIET, None, None
                    self._done = self._asked
                    self._cond.notify_all()
            os.close(wake_w)
            os.close(wake_r)


def _set_lowat(sock: socket.socket, size: int) -> int:
    """SO_RCVLOWAT where the platform has it; without it a pause just lasts its window."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
    return size


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 64):
            pass
