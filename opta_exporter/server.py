"""HTTP: the metrics, a landing page, and /healthz, on a small threaded WSGI server.

The metrics are negotiated as the client library negotiates them (OpenMetrics when
Prometheus asks for it, gzip when accepted) and written by exposition.py and
relay_text.py, byte for byte as the library would write them.
"""

from __future__ import annotations

import contextlib
import gzip
import html
import json
import logging
import selectors
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import choose_encoder

from opta_exporter import __version__
from opta_exporter.collector import tables
from opta_exporter.config import Config
from opta_exporter.exposition import Exposition
from opta_exporter.relay_text import RelayText
from opta_exporter.store import Store
from opta_exporter.webconfig import BasicAuth, WebConfig

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
Environ = dict[str, Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops mid-request or speaks plain HTTP to TLS: not our fault,
        not worth a traceback on stderr."""
        log.debug("HTTP request from %s failed", client_address[0], exc_info=True)


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Access logs per scrape would drown the useful lines."""


def health(store: Store) -> dict[str, Any]:
    view = store.view()
    h = view.health
    age = None if h.last_event_wall is None else round(view.wall - h.last_event_wall, 3)
    return {
        "status": "ok",
        "connection_state": h.connection_state,
        "lmx_up": h.up(view.now),
        "last_event_age_seconds": age,
        "version": __version__,
    }


_LANDING = """<!doctype html>
<html><head><meta charset="utf-8"><title>opta-exporter</title></head>
<body><h1>opta-exporter {version}</h1>
<p>Prometheus exporter for Opta LMX at <code>{lmx}</code>.</p>
<p>Event stream: <strong>{state}</strong> (LMX up: {up}); last event {age}.</p>
<ul><li><a href="{path}">Metrics</a></li><li><a href="/healthz">Health</a></li></ul>
</body></html>
"""


def metrics_body(
    store: Store, relay: RelayText | None, accept: str, exposition: Exposition | None = None
) -> tuple[bytes, str]:
    """The exposition in the format the scraper asked for (the library negotiates)."""
    _, content_type = choose_encoder(accept)
    openmetrics = content_type.startswith("application/openmetrics-text")
    view = store.view()
    parts = [
        (exposition or Exposition()).render(tables(view.state, view.health, view.now), openmetrics)
    ]
    if relay is not None:
        parts.append(relay.render(openmetrics))
    if openmetrics:
        parts.append("# EOF\n")
    return "".join(parts).encode(), content_type  # one copy of ~350 KB, not one per part


def make_app(store: Store, relay: RelayText | None, config: Config) -> App:
    telemetry_path, lmx_url = config.telemetry_path, config.lmx_url
    exposition = Exposition()

    def metrics(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body, content_type = metrics_body(store, relay, environ.get("HTTP_ACCEPT", ""), exposition)
        headers = [("Content-Type", content_type)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)  # 9 costs 10x the time for 20 %
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == telemetry_path:
            return metrics(environ, start_response)
        if path == "/healthz":
            body = json.dumps(health(store)).encode()
            ctype = "application/json"
        elif path == "/":
            info = health(store)
            age = info["last_event_age_seconds"]
            body = _LANDING.format(
                version=__version__,
                lmx=html.escape(lmx_url),
                path=html.escape(telemetry_path),
                state=info["connection_state"],
                up="yes" if info["lmx_up"] else "no",
                age="never" if age is None else f"{age:.1f}s ago",
            ).encode()
            ctype = "text/html; charset=utf-8"
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    return app


def require_auth(app: App, auth: BasicAuth) -> App:
    def guarded(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if auth.allows(environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="opta-exporter"')],
        )
        return [b"unauthorized\n"]

    return guarded


class MetricsServer:
    def __init__(self, host: str, port: int, app: App, web: WebConfig | None = None) -> None:
        web = web or WebConfig()
        if web.users:
            app = require_auth(app, BasicAuth(web.users))
        server_class = _IPv6Server if ":" in host else _Server
        self._httpd = make_server(
            host or "0.0.0.0",  # noqa: S104 - an exporter serves the network by default
            port,
            app,
            server_class=server_class,
            handler_class=_QuietHandler,
        )
        if web.tls is not None:
            # The handshake runs in the request's own thread, not in the accept loop.
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
        self._wake_r.close()
        self._wake_w.close()
