"""The admin HTTP side of the LMX stand-in: shedding, the key check, JSON and the SSE response.

Standard library only. Every behaviour here copies something a running LMX does on the
wire (see docs/lmx-protocol.md); routes.py says which path is which read, the simulator's
mixins hold the state behind the bodies.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import queue
import socket
import socketserver
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs

from lmx_simulator.admin_docs import SHED_BODY
from lmx_simulator.hub import EventHub, Subscriber, heartbeat_frame
from lmx_simulator.routes import SHEDDING_EXEMPT, Route, request_path, route_for


class CaseInsensitiveHeaders(dict[str, str]):
    """Request headers as sent, but looked up like HTTP does (case-insensitively)."""

    def _key(self, key: str) -> str:
        if super().__contains__(key):
            return key
        return next((k for k in self if k.lower() == key.lower()), key)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(self._key(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(self._key(key))

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(self._key(key), default)


@dataclass(frozen=True)
class WireOptions:
    admin_key: str | None
    heartbeat_interval: float
    silent_connect: bool
    chunked: bool


class Backend(Protocol):
    """What the handler needs from the simulator's model state."""

    def note_request(self, method: str, path: str, headers: dict[str, str]) -> None: ...
    def is_shedding(self) -> bool: ...
    def read(self, route: Route, query: str) -> tuple[int, object]: ...
    def metrics_text(self) -> str: ...


class LmxHttpServer(ThreadingHTTPServer):
    """Loopback server that can cut every open connection, so stop() never waits on a stream."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], backend: Backend, hub: EventHub, options: WireOptions
    ) -> None:
        self.backend, self.hub, self.options = backend, hub, options
        self.open_connections: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, LmxRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a bad resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet about clients that went away; anything else is a simulator bug."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    def abort_connections(self) -> list[threading.Thread]:
        with self.hub.cond:
            conns = dict(self.open_connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return list(conns.values())


class LmxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LmxHttpServer

    def version_string(self) -> str:
        return "uvicorn"

    def setup(self) -> None:
        super().setup()
        with self.server.hub.cond:
            self.server.open_connections[self.connection] = threading.current_thread()

    def finish(self) -> None:
        with self.server.hub.cond:
            self.server.open_connections.pop(self.connection, None)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        """Silenced: a test run must not print a line per request."""

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def _route(self, method: str) -> None:
        backend = self.server.backend
        backend.note_request(method, self.path, CaseInsensitiveHeaders(self.headers.items()))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path, query = request_path(self.path)
        if path not in SHEDDING_EXEMPT and backend.is_shedding():
            self._send_shed()  # before routing and the key check, as LMX's middleware does
        elif (route := route_for(path)) is None:
            self._send_json(404, {"detail": "Not Found"})
        elif method != "GET":
            self._send_json(405, {"detail": "Method Not Allowed"}, allow="GET")
        elif route.admin and not self._authorized(path, query):
            self._send_json(403, {"detail": "Invalid or missing admin key"})
        elif route.name == "events":
            self._stream()
        elif route.name == "metrics":
            body = backend.metrics_text().encode()
            self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._send_json(*backend.read(route, query))

    def _authorized(self, path: str, query: str) -> bool:
        """The header always counts; the query forms only on /admin/events, as in LMX."""
        key = self.server.options.admin_key
        if key is None:
            return True
        given = self.headers.get("X-Admin-Key")
        if given is None and path == "/admin/events":
            params = parse_qs(query)
            values = params.get("admin_key") or params.get("x_admin_key")
            given = values[0] if values else None
        return given is not None and hmac.compare_digest(given.encode(), key.encode())

    def _send_json(self, status: int, doc: object, allow: str | None = None) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json", allow)

    def _send(self, status: int, body: bytes, ctype: str, allow: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", uuid.uuid4().hex)
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_shed(self) -> None:
        """LMX's 503 while it sheds load: a raw body, chunked, no content-length."""
        body = json.dumps(SHED_BODY).encode()
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("retry-after", "30")
        self.send_header("x-request-id", uuid.uuid4().hex)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    def _stream(self) -> None:
        """SSE the way uvicorn sends it: headers at once, one chunk per frame, maybe no body."""
        options, hub = self.server.options, self.server.hub
        sub = hub.subscribe()  # before the headers: once a client has them, events reach it
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", uuid.uuid4().hex)
        if options.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
        self.close_connection = True
        try:
            self.end_headers()
            if sub is not None:
                threading.Thread(target=self._watch_for_hangup, args=(sub,), daemon=True).start()
                self._pump(sub, options)
                self.connection.shutdown(socket.SHUT_RD)  # releases the watcher
            if options.chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away, or stop() cut the connection
        finally:
            if sub is not None:
                hub.drop(sub)

    def _watch_for_hangup(self, sub: Subscriber) -> None:
        """LMX (sse-starlette) notices a client that hangs up at once, not at the next write;
        without this a dead stream would hold its slot until its next heartbeat."""
        with contextlib.suppress(OSError):
            while self.connection.recv(4096):
                pass
        self.server.hub.end(sub)

    def _pump(self, sub: Subscriber, options: WireOptions) -> None:
        """Forward queued frames; a heartbeat only after a full idle interval (LMX's timer)."""
        if not options.silent_connect:
            self._write_frame(heartbeat_frame(), options)
        deadline = time.monotonic() + options.heartbeat_interval
        while not sub.closing:
            try:
                frame = sub.queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                frame = heartbeat_frame()
            if frame is None or sub.closing:
                return
            self._write_frame(frame, options)
            deadline = time.monotonic() + options.heartbeat_interval

    def _write_frame(self, frame: bytes, options: WireOptions) -> None:
        if options.chunked:
            frame = b"%x\r\n%s\r\n" % (len(frame), frame)
        self.wfile.write(frame)
