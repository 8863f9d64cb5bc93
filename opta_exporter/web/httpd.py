"""The HTTP server under the app: HTTP/1.1 with kept-alive connections, one thread each.

Prometheus keeps its connection to a target open between scrapes. wsgiref (what
prometheus_client serves with) speaks HTTP/1.0, so every scrape paid for a new
connection and a new thread; here the scraper's thread and socket live as long as its
connection, which idles out after `idle_timeout`. TCP_NODELAY, as Go's servers set it:
a kept connection must not wait on a delayed ACK for a response's last segment.

Everything before authentication is bounded, since anyone who can connect gets that
far: a request's head (line and headers) is at most `MAX_HEAD_BYTES` and must arrive
whole within `head_timeout`, a TLS handshake within `handshake_timeout`, and the
connections doing either count against `max_connections` like kept ones. So a client
that trickles bytes or sends huge headers holds a slot for seconds and a few KiB, not
for ever and hundreds of MB, and a scraper's kept connection is never at its mercy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from socketserver import TCPServer, ThreadingMixIn
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from opta_exporter import __version__
from opta_exporter.web.app import App, Environ, require_auth, with_headers
from opta_exporter.web.webconfig import BasicAuth, WebConfig

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 120.0  # longer than any sane scrape interval's gap; Go's clients idle 90 s
# Kept connections at once: a Prometheus HA pair, a few dashboards and curls fit, a client
# that leaks connections cannot turn into thousands of threads.
MAX_CONNECTIONS = 64
# A request line and all its headers together; Prometheus sends well under 1 KiB. The
# standard library alone allows 100 headers of 64 KiB each, parsed before any auth.
MAX_HEAD_BYTES = 64 * 1024
# From a new connection's accept, or a kept connection's first byte of a request, to the
# head's blank line: what a slowloris client can hold a slot for.
HEAD_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0  # TLS, in the connection's thread, never in the accept loop
# A body on GET or HEAD means nothing here; up to this much is read and dropped so it
# cannot be taken for the next request, more is refused (413) and the connection closed.
MAX_DISCARDED_BODY = 8 * 1024
_DIGITS = re.compile(r"[0-9]{1,18}")
# After an error answer, what is still in flight is read out (this much, for this long)
# before the close, or the close's reset could destroy the answer before the client reads it.
_LINGER_BYTES = 256 * 1024
_LINGER_SECONDS = 1.0


class _Server(ThreadingMixIn, TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver listens with a queue of 5: connects past it are dropped and retried by
    # the client a second or more later, so a burst of connections (even ones refused at
    # once) would stall a scraper's connect.
    request_queue_size = 2 * MAX_CONNECTIONS

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        idle_timeout: float,
        max_connections: int,
        *,
        head_timeout: float,
        handshake_timeout: float,
        listening: socket.socket | None = None,
    ) -> None:
        self.app, self.idle_timeout, self.max_connections = app, idle_timeout, max_connections
        self.head_timeout, self.handshake_timeout = head_timeout, handshake_timeout
        self.connections: set[socket.socket] = set()
        self.refusing = False
        self.lock = threading.Lock()
        super().__init__(address, _Handler, bind_and_activate=listening is None)
        if listening is not None:  # handed over already bound and listening (systemd)
            self.socket.close()
            self.socket = listening
            self.server_address = listening.getsockname()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops mid-request or speaks plain HTTP to TLS: not our fault,
        not worth a traceback on stderr."""
        log.debug("HTTP request from %s failed", client_address[0], exc_info=True)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Over the limit, a new connection is closed at once (the scraper retries);
        said once per spell of refusals, not once per connection."""
        with self.lock:
            if len(self.connections) < self.max_connections:
                self.connections.add(request)
                self.refusing = False
                return True
            if self.refusing:
                return False
            self.refusing = True
        log.warning("HTTP: %d connections open, new ones refused", self.max_connections)
        return False

    def shutdown_request(self, request: Any) -> None:
        """After the connection's thread, or a refusal: its slot is free again."""
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Ends every kept connection: each thread's blocked read returns at once."""
        with self.lock:
            kept = list(self.connections)
        for conn in kept:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


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


class _Handler(BaseHTTPRequestHandler):
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


class MetricsServer:
    """The listening socket, its accept thread, and the connections' threads."""

    def __init__(
        self,
        host: str,
        port: int,
        app: App,
        web: WebConfig | None = None,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        head_timeout: float = HEAD_TIMEOUT,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        listening: socket.socket | None = None,
    ) -> None:
        """`listening`: a socket already bound and listening (socket activation);
        `host` and `port` are then not used."""
        web = web or WebConfig()
        if web.users:
            app = require_auth(app, BasicAuth(web.users))
        if web.headers:
            app = with_headers(app, web.headers)
        ipv6 = listening.family == socket.AF_INET6 if listening is not None else ":" in host
        server_class = _IPv6Server if ipv6 else _Server
        address = (host or "0.0.0.0", port)  # noqa: S104 - an exporter serves the network
        self._httpd = server_class(
            address,
            app,
            idle_timeout,
            max_connections,
            head_timeout=head_timeout,
            handshake_timeout=handshake_timeout,
            listening=listening,
        )
        if web.tls is not None:
            # The handshake runs in the connection's own thread, not in the accept loop.
            self._httpd.socket = web.tls.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def address(self) -> str:
        """Where it listens, as --web.listen-address says it: `127.0.0.1:8080`, `[::1]:8080`."""
        host = str(self._httpd.server_address[0])
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        """serve_forever wakes every poll interval to look for a shutdown request (the
        idle exporter's largest cost after the heartbeats); this loop sleeps until a
        client connects or stop() writes to the wake-up socket."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._httpd, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while all(key.fileobj is self._httpd for key, _ in selector.select()):
                self._httpd.handle_request()  # ready: accepts at once, a thread serves it

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive():  # never started, or stopped before: nothing to wait for
            self._thread.join(timeout=2.0)
        self._httpd.server_close()
        self._httpd.close_connections()
        self._wake_r.close()
        self._wake_w.close()


SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at file descriptor 3


def systemd_sockets(environ: dict[str, str] | None = None) -> list[socket.socket]:
    """The listening sockets systemd passed this process (LISTEN_PID is ours,
    LISTEN_FDS counts them from fd 3), as sd_listen_fds(3) reads them; the variables are
    then removed so a child process does not take them for its own."""
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    found = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        sock = socket.socket(fileno=fd)
        os.set_inheritable(fd, False)
        if sock.type == socket.SOCK_STREAM:
            found.append(sock)
    return found
