"""HTTP: the metrics, a landing page, and /healthz, as a WSGI app (httpd.py serves it).

The metrics are negotiated as the client library negotiates them (OpenMetrics when
Prometheus asks for it, gzip when accepted) and written by exposition.py and
relay_text.py, byte for byte as the library would write them.
"""

from __future__ import annotations

import html
import json
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.exposition import choose_encoder

from opta_exporter import __version__
from opta_exporter.config import Config
from opta_exporter.metrics.collector import tables
from opta_exporter.metrics.exposition import Exposition
from opta_exporter.relay.text import RelayText
from opta_exporter.store import Store
from opta_exporter.web.webconfig import BasicAuth

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]


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
    exposition = exposition or Exposition()
    parts = exposition.parts(tables(view.state, view.health, view.now, view.wall), openmetrics)
    if relay is not None:
        parts.append(relay.render(openmetrics))
    if openmetrics:
        parts.append(b"# EOF\n")
    return b"".join(parts), content_type  # the only copy of the whole body


def make_app(store: Store, relay: RelayText | None, config: Config) -> App:
    telemetry_path, lmx_url = config.telemetry_path, config.lmx_url
    exposition = Exposition()

    def metrics(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body, content_type = metrics_body(store, relay, environ.get("HTTP_ACCEPT", ""), exposition)
        headers = [("Content-Type", content_type)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            # gzip at level 1: higher levels cost many times the CPU for a little less size;
            # the CRC in the same pass
            body = zlib.compress(body, 1, wbits=31)
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
