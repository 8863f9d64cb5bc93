"""The HTTP server under the app: HTTP/1.1 with kept-alive connections, one thread each.

Prometheus keeps its connection to a target open between scrapes. wsgiref (what
prometheus_client serves with) speaks HTTP/1.0, so every scrape paid for a new
connection and a new thread; here the scraper's thread and socket live as long as its
connection, which idles out after `idle_timeout`. TCP_NODELAY, as Go's servers set it:
a kept connection must not wait on a delayed ACK for a response's last segment.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler
from socketserver import TCPServer, ThreadingMixIn
from typing import Any
from urllib.parse import unquote

from opta_exporter import __version__
from opta_exporter.web.app import App, Environ, require_auth
from opta_exporter.web.webconfig import BasicAuth, WebConfig

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 120.0  # longer than any sane scrape interval's gap; Go's clients idle 90 s
# Kept connections at once: a Prometheus HA pair, a few dashboards and curls fit, a client
# that leaks connections cannot turn into thousands of threads.
MAX_CONNECTIONS = 64


class _Server(ThreadingMixIn, TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], app: App, idle_timeout: float, max_connections: int
    ) -> None:
        self.app, self.idle_timeout, self.max_connections = app, idle_timeout, max_connections
        self.connections: set[socket.socket] = set()
        self.refusing = False
        self.lock = threading.Lock()
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"opta-exporter/{__version__}"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        threading.current_thread().name = "http-conn"  # what a thread dump shows
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)  # a read or write idles out

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Access logs per scrape would drown the useful lines."""

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
            body = b"".join(self.server.app(environ, start_response))
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
    ) -> None:
        web = web or WebConfig()
        if web.users:
            app = require_auth(app, BasicAuth(web.users))
        server_class = _IPv6Server if ":" in host else _Server
        address = (host or "0.0.0.0", port)  # noqa: S104 - an exporter serves the network
        self._httpd = server_class(address, app, idle_timeout, max_connections)
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
