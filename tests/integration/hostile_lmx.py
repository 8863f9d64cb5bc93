"""A loopback LMX whose admin bodies a test sets byte for byte: hostile JSON (100k levels
deep, a non-object, numbers no float holds, NaN) and oversized /admin/metrics, which the
simulator cannot send because it builds its bodies with json.dumps.

`/admin/events` answers 404, so the stream stays in backoff and never resyncs: what
reads /admin/status is the snapshot thread alone.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

JSON = "application/json"
TEXT = "text/plain; version=0.0.4; charset=utf-8"

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
NOT_AN_OBJECT = b'["status", 1, null]'
HUGE = b"1" + b"0" * 400  # parses as an int; float() of it raises OverflowError
HOSTILE_JSON = {
    "deep array": DEEP_ARRAY,
    "deep object": DEEP_OBJECT,
    "non-object": NOT_AN_OBJECT,
}

METRICS = (
    "# HELP lmx_uptime_seconds Uptime.\n# TYPE lmx_uptime_seconds gauge\nlmx_uptime_seconds 12\n"
    "# HELP lmx_completion_tokens_total Tokens.\n# TYPE lmx_completion_tokens_total counter\n"
    "lmx_completion_tokens_total 100\n"
)


def _json(doc: object) -> tuple[int, str, bytes]:
    return 200, JSON, json.dumps(doc).encode()


def good_bodies() -> dict[str, tuple[int, str, bytes]]:
    return {
        "/admin/status": _json(
            {"version": "0.1.0", "uptime_seconds": 12.5, "models": ["m"], "in_flight_requests": 0}
        ),
        "/admin/memory": _json(
            {"total_unified_memory_gb": 64, "used_gb": 8, "models": {"m": {"memory_gb": 4.0}}}
        ),
        "/admin/health": _json({"status": "ok", "memory_usage_percent": 12.5}),
        "/admin/models": _json({"loaded": [{"id": "m", "readiness": {"state": "routable"}}]}),
        "/admin/diagnostics": _json({"health_verdict": "healthy"}),
        "/admin/models/downloads": _json({"downloads": []}),
        "/admin/quantize": _json({"jobs": []}),
        "/admin/metrics": (200, TEXT, METRICS.encode()),
    }


class HostileLmx:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.bodies = good_bodies()
        self.served: Counter[str] = Counter()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with owner.cond:
                    status, ctype, body = owner.bodies.get(path, (404, JSON, b"{}"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with owner.cond:
                    owner.served[path] += 1
                    owner.cond.notify_all()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def set(self, path: str, body: bytes, ctype: str = JSON, status: int = 200) -> None:
        with self.cond:
            self.bodies[path] = (status, ctype, body)

    def restore(self, path: str) -> None:
        with self.cond:
            self.bodies[path] = good_bodies()[path]

    def wait_served(self, path: str, more: int, timeout: float) -> bool:
        """Block until `path` has been answered `more` times after this call."""
        with self.cond:
            target = self.served[path] + more
            return self.cond.wait_for(lambda: self.served[path] >= target, timeout)

    def __enter__(self) -> HostileLmx:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
