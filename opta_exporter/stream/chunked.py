"""HTTP/1.1 chunked transfer coding (RFC 9112, 7.1), cut out of large raw reads.

LMX (uvicorn) sends every event as its own HTTP chunk. urllib3 decodes a chunked body a
chunk at a time, in Python: a readline for the size, a read for the data, a read for the
CRLF, per event. Reading the connection's buffered reader with `read1` instead takes
everything that has arrived in one call (hundreds of events under load) and still returns
at once when a single event arrives; this decoder then slices the chunks out with bytes
methods. It holds nothing but a few framing bytes: chunk data is handed on as it arrives,
however long the chunk (the SSE parser bounds what it keeps of an event).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from urllib3.exceptions import ProtocolError

MAX_SIZE_LINE = 4096  # a size and its extensions; urllib3 reads lines up to 64 KiB
_HEX = b"0123456789abcdefABCDEF"


class ChunkError(ProtocolError):
    """Broken framing: the connection is as good as broken (what urllib3 raises too)."""


_SIZES: dict[bytes, int] = {}  # size lines seen: LMX's events come in a few hundred sizes


def _size(line: bytes) -> int:
    """`1*HEXDIG [chunk-ext]`: int(x, 16) alone would also take `0x1a`, `1_a` or `-1`."""
    size = _SIZES.get(line)
    if size is not None:
        return size
    digits = line.split(b";", 1)[0].strip(b" \t\r")
    if not digits or digits.translate(None, _HEX) or len(digits) > 16:
        raise ChunkError(f"bad chunk size line {line[:40]!r}")
    size = int(digits, 16)
    if len(_SIZES) < 4096:
        _SIZES[line] = size
    return size


class Dechunker:
    def __init__(self) -> None:
        self.done = False  # the last chunk (size 0) has arrived: the body is over
        self._left = 0  # data bytes of the current chunk still to come
        self._crlf = False  # the current chunk's data is complete; its CRLF is next
        self._pending = b""  # framing bytes split across reads (a size line, a CRLF)

    @property
    def at_boundary(self) -> bool:
        return not (self._left or self._crlf or self._pending)

    def feed(self, data: bytes) -> bytes:
        """The chunk data (payload) carried by these bytes, in order."""
        if self._pending:
            data, self._pending = self._pending + data, b""
        out: list[bytes] = []
        pos, end, left = 0, len(data), self._left
        while not self.done:
            if left:
                stop = pos + left
                if stop > end:
                    out.append(data[pos:])
                    left, pos = stop - end, end
                    break
                out.append(data[pos:stop])
                pos, left, self._crlf = stop, 0, True
            if self._crlf:
                if end - pos < 2:
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise ChunkError("chunk data not followed by CRLF")
                pos, self._crlf = pos + 2, False
            newline = data.find(b"\n", pos, pos + MAX_SIZE_LINE)
            if newline < 0:
                if end - pos >= MAX_SIZE_LINE:
                    raise ChunkError("chunk size line too long")
                break
            left = _size(data[pos:newline])
            pos = newline + 1
            self.done = left == 0  # trailers, if any, are not read: nothing follows
        self._left = left
        if pos < end and not self.done:
            self._pending = data[pos:]
        return out[0] if len(out) == 1 else b"".join(out)


def dechunk(reads: Iterable[bytes]) -> Iterator[bytes]:
    """Payload per read, until the last chunk; a body cut short is a broken connection,
    as urllib3 has it."""
    decoder = Dechunker()
    for data in reads:
        payload = decoder.feed(data)
        if payload:
            yield payload
        if decoder.done:
            return
    raise ChunkError("connection closed before the last chunk")
