"""The HTTP side of one event stream: what ends an attempt, how the body is read, and
how another thread reaches its socket. No state, no threads."""

from __future__ import annotations

import email.utils
import math
import socket
from collections.abc import Iterator
from typing import Any

import requests
from urllib3.exceptions import ReadTimeoutError

from opta_exporter.stream.chunked import dechunk
from opta_exporter.stream.pacer import READ_SIZE, Pacer


class StreamEnded(Exception):
    """One connection is over; `reason` is the reconnect reason in the contract."""

    def __init__(
        self, reason: str, detail: str, *, healthy: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.healthy = healthy
        self.retry_after = retry_after


def retry_after_seconds(resp: requests.Response, now: float) -> float | None:
    """Seconds (a fraction tolerated) or an HTTP date, as RFC 9110 allows; else None."""
    value = resp.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def media_type(resp: requests.Response) -> str:
    return resp.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _buffered_reader(resp: requests.Response) -> Any:
    """http.client's buffered reader of the connection, or None: it may already hold the
    first bytes of the body, so the body is read from it, never from the bare socket."""
    reader = getattr(getattr(resp.raw, "_fp", None), "fp", None)
    return reader if callable(getattr(reader, "read1", None)) else None


def receive(reader: Any, pacer: Pacer | None = None) -> Iterator[bytes]:
    """Whatever has arrived, read by read1 until the reader's buffer is drained (a read
    shorter than asked for), then from its socket: the same bytes, without the buffered
    and socket-IO layers' Python frames on every wakeup (bench/README.md). A plain socket
    is read through `pacer` when there is one; TLS (whose records the socket buffers
    out of poll's sight) and anything else unusual is read as it comes."""
    while len(data := reader.read1(READ_SIZE)) == READ_SIZE:
        yield data
    if not data:
        return
    yield data
    sock = getattr(getattr(reader, "raw", None), "_sock", None)
    if pacer is not None and type(sock) is socket.socket:
        yield from pacer.reads(sock, just_read=True)
        return
    recv = sock.recv if isinstance(sock, socket.socket) else reader.read1
    while data := recv(READ_SIZE):
        yield data


def chunks(resp: requests.Response, pacer: Pacer | None = None) -> Iterator[bytes]:
    """Large reads that still hand over each event at once (see measurements.md and
    chunked.py): the connection's reader, then its socket, return whatever has arrived. A body
    with a content coding or a length (neither is LMX's) goes through urllib3."""
    raw, reader = resp.raw, _buffered_reader(resp)
    plain = resp.headers.get("Content-Encoding", "identity").strip().lower() == "identity"
    if reader is not None and plain and (raw.chunked or "Content-Length" not in resp.headers):
        reads = receive(reader, pacer)
        return dechunk(reads) if raw.chunked else reads
    if raw.chunked:
        return raw.stream(READ_SIZE, decode_content=True)
    return iter(lambda: raw.read1(READ_SIZE), b"")


def check_response(resp: requests.Response, now: float) -> None:
    """Anything but 200 with an event-stream media type ends the attempt, with its reason."""
    status = resp.status_code
    if status in (401, 403):
        raise StreamEnded("auth", f"HTTP {status}: LMX refused the admin key")
    if 300 <= status < 400:
        raise StreamEnded("http_error", f"HTTP {status}: redirects are not followed")
    if status != 200:
        wait = retry_after_seconds(resp, now)
        raise StreamEnded("http_error", f"HTTP {status}", retry_after=wait)
    if media_type(resp) != "text/event-stream":
        raise StreamEnded(
            "protocol",
            f"expected text/event-stream, got {media_type(resp) or 'no content type'!r}",
        )


def socket_of(resp: requests.Response) -> socket.socket | None:
    """The stream's socket. http.client hands a close-delimited response's socket over to
    the response (the connection's `sock` is None then), so look there too."""
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    if sock is None:
        reader = getattr(getattr(resp.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def is_timeout(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, (ReadTimeoutError, TimeoutError, requests.Timeout)):
            return True
        nxt = exc.__context__ or (
            exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        )
        if nxt is None or nxt is exc:
            return False
        exc = nxt
    return False
