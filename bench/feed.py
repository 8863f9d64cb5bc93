"""A firehose LMX for the ingestion runs: the same pre-framed bytes to every consumer.

The bundled simulator drops a subscriber whose 100-event queue fills, as LMX does, so it
cannot feed a consumer flat out. This server answers `/admin/events` with its headers at
once (LMX's silent connect), holds the body until the harness calls `release`, then writes
the prepared body — one HTTP chunk per event, as uvicorn frames LMX's stream — in large
writes so the server is never the bottleneck, and ends the stream. `/admin/status` and
`/admin/memory` answer with the 100 models, so the exporter's connect-time resync is real.
"""

from __future__ import annotations

import json
import queue
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

from bench.workload import MODELS, chunked, frames
from lmx_simulator import LmxSimulator

WRITE_SIZE = 1 << 16
HOLD_TIMEOUT = 600.0


@dataclass(frozen=True)
class FeedInfo:
    url: str
    events: int  # per repetition of the body
    body_bytes: int  # SSE bytes per repetition, HTTP framing excluded
    wire_bytes: int  # the same with the chunk framing


def _lmx_metrics() -> bytes:
    """LMX's own /admin/metrics (which the exporter relays) after a request per model."""
    lmx = LmxSimulator()  # never started: only its exposition is used
    for model in MODELS:
        lmx.record_request(model, latency_sec=0.7)
    return lmx.metrics_text().encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.metrics = _lmx_metrics()
        self.go: queue.Queue[int] = queue.Queue()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        """Quiet."""

    def do_GET(self) -> None:
        if self.path.startswith("/admin/events"):
            self._events()
        elif self.path.startswith(("/admin/status", "/admin/memory")):
            self._json()
        elif self.path.startswith("/admin/metrics"):
            self._send(self.server.metrics, "text/plain; version=0.0.4; charset=utf-8")
        else:
            self.send_error(404)

    def _json(self) -> None:
        models = {m: {"memory_gb": 4.0, "loaded": True} for m in MODELS}
        doc: dict[str, object] = {
            "version": "0.1.0",
            "uptime_seconds": 100.0,
            "loaded_models": len(MODELS),
            "models": list(MODELS),
            "memory": {"total_gb": 512.0, "used_gb": 402.0, "available_gb": 110.0},
            "total_unified_memory_gb": 512.0,
            "used_gb": 402.0,
            "available_gb": 110.0,
            "threshold_percent": 90,
        }
        if self.path.startswith("/admin/memory"):
            doc["models"] = models
        self._send(json.dumps(doc).encode(), "application/json")

    def _send(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        try:
            repetitions = self.server.go.get(timeout=HOLD_TIMEOUT)
        except queue.Empty:
            return
        view = memoryview(self.server.body)
        try:
            for _ in range(repetitions):
                for start in range(0, len(view), WRITE_SIZE):
                    self.wfile.write(view[start : start + WRITE_SIZE])
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the consumer hung up once it had counted what it needed


class FeedServer:
    def __init__(self, events: int) -> None:
        sse = frames(events)
        self._events = events
        self._body_bytes = sum(map(len, sse))
        self._server = _Server(chunked(sse))
        self._thread = Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def info(self) -> FeedInfo:
        port = int(self._server.server_address[1])
        return FeedInfo(
            f"http://127.0.0.1:{port}", self._events, self._body_bytes, len(self._server.body)
        )

    def release(self, repetitions: int) -> None:
        """Let the next (or the waiting) /admin/events stream send the body this often."""
        self._server.go.put(repetitions)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- functions run in the feed's process (see agents.Agent) ---------------------------
def make_feed(events: int) -> FeedServer:
    return FeedServer(events)


def stop_feed(feed: FeedServer) -> None:
    feed.stop()


def feed_info(feed: FeedServer) -> FeedInfo:
    return feed.info()


def release(feed: FeedServer, repetitions: int) -> None:
    feed.release(repetitions)
