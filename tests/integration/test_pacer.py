"""Read pacing against a real socket pair: a quiet stream is read at once, a busy one in
batches that end on the window, on BATCH_BYTES (the kernel's SO_RCVLOWAT) or on a flush;
a flush returns only once what had arrived is handed on."""

from __future__ import annotations

import queue
import select
import socket
import threading
from collections.abc import Iterator

import pytest

from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.store import Store
from opta_exporter.stream.pacer import BATCH_BYTES, FRESH, Pacer
from tests.conftest import WAIT

STALE = 30.0


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A loopback TCP connection, as LMX's stream is (the mark is TCP's SO_RCVLOWAT)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname())
        theirs, _ = server.accept()
    return ours, theirs


class Rig:
    """The reading side in a thread, as the stream thread runs it. Each wait the pacer
    enters is reported as (poll timeout in ms, SO_RCVLOWAT then), so a test knows where
    the reader stands without sleeping."""

    def __init__(self, window: float, stale: float | None = STALE) -> None:
        self.ours, self.theirs = tcp_pair()
        self.ours.settimeout(stale)
        self.now = 100.0
        self.pacer = Pacer(window, clock=lambda: self.now, poller=self._poller)
        self.waits: queue.Queue[tuple[float | None, int]] = queue.Queue()
        self.got: list[bytes] = []
        self.handed = threading.Condition()
        self.hold = threading.Event()
        self.hold.set()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _poller(self) -> Spy:
        return Spy(self)

    def _run(self) -> None:
        try:
            for data in self.pacer.reads(self.ours):
                with self.handed:
                    self.got.append(data)
                    self.handed.notify_all()
                self.hold.wait(WAIT)
        except Exception as exc:  # the test looks at it
            self.error = exc

    def next_wait(self) -> tuple[float | None, int]:
        return self.waits.get(timeout=WAIT)

    def wait_got(self, size: int) -> bytes:
        with self.handed:
            assert self.handed.wait_for(lambda: len(b"".join(self.got)) >= size, WAIT)
            return b"".join(self.got)

    def close(self) -> None:
        self.theirs.close()
        self.hold.set()
        self.thread.join(WAIT)
        self.ours.close()


class Spy:
    def __init__(self, rig: Rig) -> None:
        self._rig = rig
        self._poll = select.poll()

    def register(self, fd: object, eventmask: int = select.POLLIN, /) -> None:
        self._poll.register(fd, eventmask)  # type: ignore[arg-type]

    def poll(self, timeout: float | None = None, /) -> list[tuple[int, int]]:
        lowat = self._rig.ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)
        self._rig.waits.put((None if timeout is None else round(timeout, 3), lowat))
        return self._poll.poll(timeout)


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = Rig(window=60.0)  # a pause no test outlasts: only bytes or a flush end it
    yield made
    made.close()


QUIET_WAIT = (STALE * 1000, 1)
PAUSE = (60_000.0, BATCH_BYTES)


def test_a_quiet_stream_is_read_the_moment_a_byte_arrives(rig: Rig) -> None:
    assert rig.next_wait() == QUIET_WAIT  # nothing yet
    rig.theirs.sendall(b"first")
    assert rig.wait_got(5) == b"first"
    assert rig.next_wait() == QUIET_WAIT  # one read is no busy stream
    rig.now += 61.0  # further apart than the window: still quiet
    rig.theirs.sendall(b"second")
    assert rig.wait_got(11) == b"firstsecond"
    assert rig.next_wait() == QUIET_WAIT


def test_a_busy_stream_pauses_until_a_flush_which_returns_after_the_bytes(rig: Rig) -> None:
    rig.next_wait()
    rig.theirs.sendall(b"one")
    rig.wait_got(3)
    rig.next_wait()
    rig.now += 0.02  # 50 events/s
    rig.theirs.sendall(b"two")
    rig.wait_got(6)
    assert rig.next_wait() == PAUSE  # the window from the last read, and the kernel's mark
    rig.theirs.sendall(b"three")  # under the mark: it waits in the socket
    assert rig.pacer.flush(WAIT)  # a batch this young is not worth waiting for
    assert b"".join(rig.got) == b"onetwo"
    rig.now += FRESH  # it has waited long enough to matter
    assert rig.pacer.flush(WAIT)
    assert b"".join(rig.got) == b"onetwothree"  # handed on before flush returned
    assert rig.next_wait() == PAUSE  # still busy: the batch goes on


def test_a_pause_ends_when_batch_bytes_are_waiting(rig: Rig) -> None:
    """LMX's queue holds 100 events: the kernel wakes the reader at ~40, window or not."""
    _make_busy(rig)
    rig.theirs.sendall(b"x" * BATCH_BYTES)
    assert len(rig.wait_got(2 + BATCH_BYTES)) == 2 + BATCH_BYTES  # no flush, no 60 s


def test_after_a_burst_sized_read_the_tail_is_read_without_a_pause(rig: Rig) -> None:
    """A burst's last events must not sit out a window behind its first ones."""
    _make_busy(rig)
    rig.hold.clear()
    rig.theirs.sendall(b"x" * BATCH_BYTES)
    rig.wait_got(2 + BATCH_BYTES)
    rig.theirs.sendall(b"tail")  # arrives while the burst is being applied
    rig.hold.set()
    assert rig.wait_got(6 + BATCH_BYTES).endswith(b"tail")  # no flush, no 60 s
    assert rig.next_wait() == PAUSE  # only after the tail
    assert rig.waits.empty()


def test_a_window_that_passes_dry_ends_the_batch() -> None:
    rig = Rig(window=0.01)
    try:
        rig.next_wait()
        rig.theirs.sendall(b"a")
        rig.wait_got(1)
        rig.next_wait()
        rig.theirs.sendall(b"b")
        rig.wait_got(2)
        assert rig.next_wait() == (10.0, BATCH_BYTES)
        assert rig.next_wait() == QUIET_WAIT  # nothing came in the window
    finally:
        rig.close()


def test_flush_waits_while_held_bytes_are_applied_and_gives_up_at_its_timeout(
    rig: Rig,
) -> None:
    _make_busy(rig)
    rig.hold.clear()  # the reader will sit on what the pause held, as a slow ingest would
    rig.theirs.sendall(b"x" * BATCH_BYTES)
    rig.wait_got(3)
    rig.now += FRESH
    assert not rig.pacer.flush(0.05)  # held bytes not handed on yet: the caller goes on
    answered: list[bool] = []
    flusher = threading.Thread(target=lambda: answered.append(rig.pacer.flush(WAIT)))
    flusher.start()
    rig.hold.set()
    flusher.join(WAIT)
    assert answered == [True]


def test_flush_does_not_wait_on_a_reader_that_reads_as_bytes_come(rig: Rig) -> None:
    """Outside a batch the reader applies everything at once: a scrape under a burst
    must not queue behind it."""
    rig.next_wait()
    rig.hold.clear()
    rig.theirs.sendall(b"lone")
    rig.wait_got(4)
    assert rig.pacer.flush(0.0)
    rig.hold.set()


def _make_busy(rig: Rig) -> None:
    """Two reads within the window: the reader pauses after the second."""
    assert rig.next_wait() == QUIET_WAIT
    rig.theirs.sendall(b"a")
    rig.wait_got(1)
    assert rig.next_wait() == QUIET_WAIT
    rig.theirs.sendall(b"b")
    rig.wait_got(2)
    assert rig.next_wait() == PAUSE


def test_flush_never_waits_when_nothing_is_read_or_the_stream_is_quiet(rig: Rig) -> None:
    assert Pacer(1.0).flush(0.0)  # no stream at all
    assert rig.next_wait() == QUIET_WAIT
    assert rig.pacer.flush(0.0)


@pytest.mark.parametrize("side", ["lmx closes", "interrupt"])
def test_the_end_of_the_stream_wakes_a_pause_ends_reads_and_frees_every_flush(
    rig: Rig, side: str
) -> None:
    """LMX closing, or the consumer's interrupt() shutting the socket down."""
    _make_busy(rig)
    if side == "lmx closes":
        rig.theirs.shutdown(socket.SHUT_WR)
    else:
        rig.ours.shutdown(socket.SHUT_RDWR)
    rig.thread.join(WAIT)
    assert not rig.thread.is_alive()
    assert rig.error is None
    assert rig.pacer.flush(0.0)


def test_silence_past_the_socket_timeout_is_a_timeout() -> None:
    rig = Rig(window=60.0, stale=0.05)
    try:
        rig.thread.join(WAIT)
        assert isinstance(rig.error, TimeoutError)
    finally:
        rig.close()


def test_a_flush_from_the_reading_thread_itself_does_not_wait_on_itself() -> None:
    ours, theirs = tcp_pair()
    pacer = Pacer(60.0)
    with ours, theirs:
        theirs.sendall(b"x")
        reads = pacer.reads(ours)
        assert next(reads) == b"x"
        assert pacer.flush(WAIT)  # would otherwise wait out WAIT and fail
        reads.close()


def test_the_store_flushes_before_every_outside_read() -> None:
    """A scrape (view) and a snapshot (seq) must see what the stream has received."""
    store = Store(LmxState(), ExporterHealth())
    asked: list[str] = []
    store.sync = lambda: asked.append("sync")
    store.view()
    store.seq()
    assert asked == ["sync", "sync"]
    store.ingest("config_reloaded", b'{"routing_aliases": 0}')  # the stream's own writes
    assert asked == ["sync", "sync"]
