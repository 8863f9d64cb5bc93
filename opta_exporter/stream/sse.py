"""Server-Sent Events framing (WHATWG HTML, "event stream interpretation"), on byte chunks.

Why not sseclient-py, which the first version used: it keeps an unbounded buffer for an
event that never ends (one hostile 10 MB line holds 10 MB, or all of memory), keeps a
UTF-8 BOM as part of the first field name, drops `retry:`/`id:` sent without data, and
costs more per event than the rest of the exporter together (see bench/). This parser
splits whole blocks at blank lines with bytes methods, bounds what it holds, and decodes
only field names (cached); data stays bytes for `json.loads`.
"""

from __future__ import annotations

import re

from opta_exporter.core.events import SseEvent

MAX_EVENT_BYTES = 1 << 20  # an LMX event is a few hundred bytes
MAX_RETRY_MS = 10**15  # longer `retry:` digit strings mean "forever" (the cap bounds it)

# What can go back to LMX as a Last-Event-ID header: http.client sends header values in
# Latin-1 and refuses CR/LF, requests refuses leading whitespace. Control characters
# (C0, DEL, C1) are refused too: no proxy need pass them.
_NOT_HEADER_SAFE = re.compile(r"[^\x20-\x7e\xa0-\xff]|^ ")


def header_safe(event_id: str) -> bool:
    """Whether an id can be sent back as Last-Event-ID. One that cannot would fail every
    reconnect while the request is built, and the exporter would never reach LMX again."""
    return _NOT_HEADER_SAFE.search(event_id) is None


_BOM = b"\xef\xbb\xbf"


class SseParser:
    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self.oversize = 0  # events dropped for size: the consumer counts them
        self.bad_ids = 0  # `id:` values ignored as unsendable: the consumer counts them
        self.last_bad_id: str | None = None  # the latest of those, for the log line
        self._buffer = b""  # an incomplete event (or the first bytes, until the BOM is known)
        self._started = False
        self._pending_cr = False  # a chunk ended in CR: an LF next ends the same line
        self._skipping = False  # inside an oversize event: drop up to the next blank line
        self._skip_tail = b""
        self._names: dict[bytes, str] = {}

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Events completed by this chunk, in order."""
        if not chunk:  # nothing to do, and a pending CR must wait for real bytes
            return []
        if (
            self._started
            and not (self._pending_cr or self._skipping or self._buffer)
            and chunk[-2:] == b"\n\n"
            and chunk.count(b"\n\n") == 1
            and b"\r" not in chunk
            and len(chunk) <= self.max_event_bytes
        ):  # LMX's common case: one whole event per read, LF only
            event = self._block(chunk[:-2])
            return [] if event is None else [event]
        if not self._started:
            chunk = self._strip_bom(chunk)
            if not self._started:
                return []
        chunk = self._normalise(chunk)
        if self._skipping:
            chunk = self._skip(chunk)
            if self._skipping:
                return []
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\n\n" not in buffer:
            self._buffer = buffer
            self._check_size()
            return []
        blocks = buffer.split(b"\n\n")
        self._buffer = blocks.pop()
        events = []
        for block in blocks:
            if len(block) > self.max_event_bytes:
                self.oversize += 1
            elif (event := self._block(block)) is not None:
                events.append(event)
        self._check_size()
        return events

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete event: never much over max_event_bytes."""
        return len(self._buffer)

    def _strip_bom(self, chunk: bytes) -> bytes:
        head = self._buffer + chunk
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._buffer = head  # a BOM split over chunks: wait for the rest
            return b""
        self._started, self._buffer = True, b""
        return head.removeprefix(_BOM)

    def _normalise(self, chunk: bytes) -> bytes:
        """CRLF and lone CR become LF, also when a CRLF is split over two chunks."""
        if self._pending_cr:
            self._pending_cr = False
            chunk = chunk.removeprefix(b"\n")
        if b"\r" in chunk:
            self._pending_cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk

    def _check_size(self) -> None:
        """Bounded memory: an event that outgrows the limit is dropped, not buffered.
        A trailing LF may be half of the blank line that ends the event: not counted, so
        where TCP splits a stream never decides whether an event is kept."""
        if len(self._buffer) - self._buffer.endswith(b"\n") > self.max_event_bytes:
            self.oversize += 1
            self._skipping = True
            self._skip_tail = b"\n" if self._buffer.endswith(b"\n") else b""
            self._buffer = b""

    def _skip(self, chunk: bytes) -> bytes:
        """Drop bytes up to and including the next blank line; return what follows."""
        data = self._skip_tail + chunk
        end = data.find(b"\n\n")
        if end < 0:
            self._skip_tail = b"\n" if data.endswith(b"\n") else b""
            return b""
        self._skipping, self._skip_tail = False, b""
        return data[end + 2 :]

    def _name(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = raw.decode("utf-8", "replace")
            if len(self._names) < 256:
                self._names[raw] = name
        return name

    def _id(self, value: bytes) -> None:
        """WHATWG ignores an id with NUL; one that cannot be sent back as a header is
        ignored as well (the previous id kept) and counted."""
        event_id = value.decode("utf-8", "replace")
        if b"\0" in value or not header_safe(event_id):
            self.bad_ids += 1
            self.last_bad_id = event_id
        else:
            self.last_event_id = event_id

    def _block(self, block: bytes) -> SseEvent | None:
        if block[:7] == b"event: ":  # fast path: exactly `event: X` then `data: Y`
            end = block.find(b"\n", 7)
            if end > 7 and block[end + 1 : end + 7] == b"data: " and block.find(b"\n", end + 1) < 0:
                return SseEvent(self._name(block[7:end]), block[end + 7 :], self.last_event_id)
        elif block[:6] == b"data: " and b"\n" not in block:
            return SseEvent("message", block[6:], self.last_event_id)
        event = b""
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if not line:  # a blank line at a block's start: nothing pending to dispatch
                continue
            field, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                data.append(value)
            elif field == b"event":
                event = value
            elif field == b"id":
                self._id(value)
            elif field == b"retry" and value.isdigit():
                digits = value.lstrip(b"0") or b"0"
                # int() refuses over 4300 digits (ValueError): a hostile line, not a crash
                self.retry_ms = int(digits) if len(digits) <= 15 else MAX_RETRY_MS
            # empty field (a comment line) and unknown fields are ignored
        if not data:
            return None
        return SseEvent(
            self._name(event) if event else "message",
            data[0] if len(data) == 1 else b"\n".join(data),
            self.last_event_id,
        )
