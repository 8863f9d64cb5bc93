"""receive() (stream/transport.py) over a reader without a socket: it keeps reading the reader."""

from __future__ import annotations

import io

from opta_exporter.stream.pacer import READ_SIZE
from opta_exporter.stream.transport import receive


def test_receive_without_a_socket_keeps_reading_the_reader() -> None:
    reader = io.BufferedReader(io.BytesIO(b"x" * (READ_SIZE + 5)))
    assert [len(piece) for piece in receive(reader)] == [READ_SIZE, 5]
