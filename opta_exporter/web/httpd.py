"""The HTTP server under the app: HTTP/1.1 with kept-alive connections, one thread each.

Prometheus keeps its connection to a target open between scrapes. wsgiref (what
prometheus_client serves with) speaks HTTP/1.0, so every scrape paid for a new
connection and a new thread; here the scraper's thread and socket live as long as its
connection, which idles out after `idle_timeout`. TCP_NODELAY, as Go's servers set it:
a kept connection must not wait on a delayed ACK for a response's last segment.

Everything before authentication is bounded, since anyone who can connect gets that
far: a request's head (line and headers) is at most `MAX_HEAD_BYTES` (connection.py) and must arrive
whole within `head_timeout`, a TLS handshake within `handshake_timeout`, and the
connections doing either count against `max_connections` like kept ones. So a client
that trickles bytes or sends huge headers holds a slot for seconds and a few KiB, not
for ever and hundreds of MB, and a scraper's kept connection is never at its mercy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
from socketserver import TCPServer, ThreadingMixIn
from typing import Any

from opta_exporter.web.app import App, require_auth, with_headers
from opta_exporter.web.connection import Handler
from opta_exporter.web.webconfig import BasicAuth, WebConfig

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 120.0  # longer than any sane scrape interval's gap; Go's clients idle 90 s
# Kept connections at once: a Prometheus HA pair, a few dashboards and curls fit, a client
# that leaks connections cannot turn into thousands of threads.
MAX_CONNECTIONS = 64
# From a new connection's accept, or a kept connection's first byte of a request, to the
# head's blank line: what a slowloris client can hold a slot for.
HEAD_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0  # TLS, in the connection's thread, never in the accept loop


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
        super().__init__(address, Handler, bind_and_activate=listening is None)
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
