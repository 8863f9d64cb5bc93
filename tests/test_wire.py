"""Read pacing: a busy stream is read once per window; a burst, a lone event or a quiet
stream never waits."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

from opta_exporter.wire import PACED_BELOW, READ_SIZE, paced, receive


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.now += seconds


def run(reads: list[tuple[bytes, float]], window: float = 0.04) -> FakeTime:
    """Each read takes the given seconds to handle before the next one is asked for."""
    fake = FakeTime()
    costs = iter(cost for _, cost in reads)

    def source() -> Iterator[bytes]:
        yield from (data for data, _ in reads)

    for _ in paced(source(), window, fake.clock, fake.wait):
        fake.now += next(costs)
    return fake


def test_a_busy_stream_waits_out_the_window_after_each_small_read() -> None:
    fake = run([(b"event", 0.001), (b"event", 0.001), (b"event", 0.0), (b"event", 0.05)])
    # the first read follows nothing: no pause; the last took longer than the window
    assert fake.waits == [0.039, 0.04]


def test_a_quiet_stream_is_never_paused() -> None:
    """Heartbeats or events further apart than two windows: a pause would catch nothing."""
    assert run([(b"heartbeat", 0.081)] * 4).waits == []
    assert run([(b"event", 0.079)] * 3).waits == []  # closer than two windows, too slow


def test_a_large_read_is_followed_at_once() -> None:
    fake = run([(b"x", 0.0), (b"x" * PACED_BELOW, 0.0), (b"x" * (PACED_BELOW - 1), 0.0)])
    assert fake.waits == [0.04]


def test_no_read_no_wait_and_no_window_no_wait() -> None:
    assert run([]).waits == []
    assert run([(b"event", 0.0)] * 3, window=0.0).waits == []


def test_receive_hands_over_the_buffered_bytes_then_reads_the_socket() -> None:
    """Bytes the reader already buffered (with the response headers, say) come first;
    then the socket is read directly, in order, until the peer closes."""
    ours, theirs = socket.socketpair()
    with ours, theirs, ours.makefile("rb") as reader:
        theirs.sendall(b"HTTP/1.1 200 OK\r\n\r\nfirst")
        assert reader.readline() == b"HTTP/1.1 200 OK\r\n"  # the rest stays buffered
        reads = receive(reader)
        assert next(reads) == b"\r\nfirst"
        calls = []
        real = ours.recv

        def recv(size: int) -> bytes:
            calls.append(size)
            return real(size)

        with _Spy(ours, recv) as spy:
            reader.raw._sock = spy  # type: ignore[attr-defined]
            theirs.sendall(b"second")
            assert next(reads) == b"second"
            theirs.shutdown(socket.SHUT_WR)
            assert list(reads) == []
            reader.raw._sock = ours  # type: ignore[attr-defined]
        assert calls == [READ_SIZE, READ_SIZE]  # the socket, not the reader, was read


class _Spy(socket.socket):
    """A socket whose recv is replaced (socket.socket's own methods are read-only)."""

    def __init__(self, sock: socket.socket, recv: object) -> None:
        super().__init__(sock.family, sock.type, fileno=socket.dup(sock.fileno()))
        self.recv = recv  # type: ignore[method-assign,assignment]


def test_receive_without_a_socket_keeps_reading_the_reader() -> None:
    reader = io.BufferedReader(io.BytesIO(b"x" * (READ_SIZE + 5)))
    assert [len(piece) for piece in receive(reader)] == [READ_SIZE, 5]
