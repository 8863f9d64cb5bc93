"""A MetricsServer in a process of its own, so a test can read its memory from /proc:
the exporter's app over an empty store, the default connection cap, the head and
handshake deadlines from argv (and a certificate and key for TLS). Prints its port;
stops when stdin closes, so it never outlives the test."""

from __future__ import annotations

import ssl
import sys

from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.store import Store, SystemClock
from opta_exporter.web.app import make_app
from opta_exporter.web.httpd import MetricsServer
from opta_exporter.web.webconfig import WebConfig


def main(argv: list[str]) -> None:
    deadline = float(argv[0])
    tls = None
    if len(argv) == 3:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(argv[1], argv[2])
    store = Store(LmxState(), ExporterHealth(), SystemClock())
    app = make_app(store, None, Config(lmx_url="http://127.0.0.1:9"))
    server = MetricsServer(
        "127.0.0.1",
        0,
        app,
        WebConfig(tls=tls),
        head_timeout=deadline,
        handshake_timeout=deadline,
    )
    server.start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
