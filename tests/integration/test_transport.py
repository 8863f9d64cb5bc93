"""How the stream's body is read (stream/transport.py), over a real socket pair: buffered bytes
first, then the socket itself."""

from __future__ import annotations

import socket

from opta_exporter.stream.pacer import READ_SIZE
from opta_exporter.stream.transport import receive


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
