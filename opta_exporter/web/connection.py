"""One client connection: its request heads read under a size bound and a deadline,
its framing checked, the WSGI app's answer written (a streamed body flushed piece by
piece). The server around it (accepting, the connection cap) is httpd.py."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from opta_exporter import __version__
from opta_exporter.web.app import Environ

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from opta_exporter.web.httpd import _Server

log = logging.getLogger("opta_exporter.web.httpd")

# A request line and all its headers together; Prometheus sends well under 1 KiB. The
# standard library alone allows 100 headers of 64 KiB each, parsed before any auth.
MAX_HEAD_BYTES = 64 * 1024
# A body on GET or HEAD means nothing here; up to this much is read and dropped so it
# cannot be taken for the next request, more is refused (413) and the connection closed.
MAX_DISCARDED_BODY = 8 * 1024
_DIGITS = re.compile(r"[0-9]{1,18}")
# After an error answer, what is still in flight is read out (this much, for this long)
# before the close, or the close's reset could destroy the answer before the client reads it.
_LINGER_BYTES = 256 * 1024
_LINGER_SECONDS = 1.0


class _Reads(io.RawIOBase):
    """The connection's reads, each waiting only for what is left of the current
    deadline: a socket timeout alone restarts with every byte a slow client sends."""

    def __init__(self, sock: socket.socket, idle_timeout: float) -> None:
        super().__init__()
        self._sock, self._idle = sock, idle_timeout
        self.deadline: float | None = None  # None: a kept connection idling between requests
        self.arm: float | None = None  # then: the deadline starts at the first byte

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self.deadline is None:
            timeout = self._idle
        else:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("request deadline passed")
        self._sock.settimeout(timeout)
        n = self._sock.recv_into(buffer)
        if n and self.deadline is None and self.arm is not None:
            self.deadline = time.monotonic() + self.arm
        return n

    def idle(self, first_byte_deadline: float | None) -> None:
        self.deadline, self.arm = None, first_byte_deadline

    def within(self, seconds: float) -> None:
        self.deadline, self.arm = time.monotonic() + seconds, None


class _TooLarge(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"opta-exporter/{__version__}"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        threading.current_thread().name = "http-conn"  # what a thread dump shows
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.server.handshake_timeout)  # for the whole handshake
            self.request.do_handshake()  # fails: handle_error, and the slot is free again
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)  # writes idle out too
        self.rfile.close()  # the library's reader, replaced by one that keeps deadlines
        self._reads = _Reads(self.connection, self.server.idle_timeout)
        self.rfile = io.BufferedReader(self._reads)
        self._served = 0

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Access logs per scrape would drown the useful lines."""

    def handle_one_request(self) -> None:
        """The library's, with the head read under a size bound and a deadline, and a
        request's framing checked before it is answered."""
        if self._served:
            self._reads.idle(self.server.head_timeout)
        else:
            self._reads.within(self.server.head_timeout)
        try:
            if not self._read_request():
                self.close_connection = True
                self._linger()
                return
        except TimeoutError:
            self.close_connection = True  # a slow or silent client: its slot is freed
            return
        self._served += 1
        self._reads.idle(None)
        self.connection.settimeout(self.server.idle_timeout)
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        method()
        self.wfile.flush()

    def _read_request(self) -> bool:
        """Reads and parses one request's head and drops a small body; False when the
        connection is to close, after an error answer where one is due."""
        try:
            head = self._read_head()
        except _TooLarge as err:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(int(str(err)))
            return False
        if head is None:
            return False
        self.raw_requestline = head[0]
        reader, self.rfile = self.rfile, io.BytesIO(b"".join(head[1:]))
        try:
            if not self.parse_request():  # the library answers its own errors
                return False
        finally:
            self.rfile = reader
        return self._drop_body()

    def _linger(self) -> None:
        """Half-closes, then reads out (bounded) what the client still sends, so the
        answer arrives before the close; an EOF ends it at once."""
        with contextlib.suppress(OSError):  # TimeoutError too
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self._reads.within(_LINGER_SECONDS)
            left = _LINGER_BYTES
            while left > 0 and (chunk := self.rfile.read1(min(left, 65536))):
                left -= len(chunk)

    def _read_head(self) -> list[bytes] | None:
        """The request line and header lines up to the blank one; None at an EOF."""
        lines: list[bytes] = []
        left = MAX_HEAD_BYTES
        while True:
            line = self.rfile.readline(left + 1)
            if not line or (not line.endswith(b"\n") and len(line) <= left):
                return None  # EOF: before a request, or halfway through one
            left -= len(line)
            if left < 0:
                raise _TooLarge(414 if not lines else 431)
            blank = line in (b"\r\n", b"\n")
            if blank and lines:
                return lines
            if not blank:  # blank lines before a request line are skipped (RFC 9112 2.2)
                lines.append(line)

    def _drop_body(self) -> bool:
        """GET and HEAD have no body here, and an unread one would be parsed as the next
        request: Transfer-Encoding or conflicting lengths are refused (400), a small body
        with a Content-Length is read and dropped, a large one refused (413)."""
        if "Transfer-Encoding" in self.headers:
            self.send_error(400, "Transfer-Encoding on a request")
            return False
        lengths = {
            part.strip()
            for value in self.headers.get_all("Content-Length", [])
            for part in value.split(",")
        }
        if not lengths:
            return True
        length = lengths.pop()
        if lengths or not _DIGITS.fullmatch(length):
            self.send_error(400, "Bad Content-Length")
            return False
        if int(length) > MAX_DISCARDED_BODY:
            self.send_error(413)
            return False
        size = int(length)
        return len(self.rfile.read(size)) == size  # short: the client went away

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        path, _, query = self.path.partition("?")
        environ: Environ = {
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(path, "iso-8859-1"),  # as wsgiref decodes it
            "QUERY_STRING": query,
        }
        for name in ("Accept", "Accept-Encoding", "Authorization"):
            value = self.headers.get(name)
            if value is not None:
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            started.append((status, headers))

        try:
            result = self.server.app(environ, start_response)
            if not isinstance(result, (list, tuple)):  # a stream: written as it comes
                self._stream(result, started[-1], send_body)
                return
            body = b"".join(result)
            status, headers = started[-1]
        except Exception:
            log.exception("serving %s failed", path)  # a bug: say so, keep serving
            self.send_error(500)
            return
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))  # what keeps the connection
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _stream(
        self,
        body: Iterable[bytes],
        started: tuple[str, list[tuple[str, str]]],
        send_body: bool,
    ) -> None:
        """A body the app yields piece by piece (the live events): each piece is sent as
        one chunk at once, not gathered. It ends when the app's iterator does, or at the
        first failed write (the client left, or stop() shut the socket), and the body is
        closed either way, as WSGI asks, so the app frees what it holds."""
        status, headers = started
        code, _, reason = status.partition(" ")
        if not send_body:  # HEAD: what the body holds is given back before the answer
            _close(body)
        try:
            self.send_response(int(code), reason)
            for name, value in headers:
                if name.lower() not in ("content-length", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if send_body:
                for chunk in body:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client is gone, or the server stops
        except Exception:
            log.exception("streaming %s failed", self.path.partition("?")[0])  # a bug
            self.close_connection = True  # the headers are out: no 500 now, only the close
        finally:
            _close(body)


def _close(body: Iterable[bytes]) -> None:
    """WSGI's close(), when the body has one; the app makes it safe to call twice."""
    close = getattr(body, "close", None)
    if close is not None:
        close()
