"""HTTP: the metrics, a landing page, /-/healthy, /-/ready, /healthz and the live view's
data (/api/live, /api/live/events: events.py), as a WSGI app (httpd.py serves it).

The metrics are negotiated by q-value (negotiation.py: OpenMetrics 1.0.0 when the scraper
prefers it, else the text format 0.0.4; gzip when accepted) and written by exposition.py and
relay_text.py, byte for byte as the client library would write them; the exporter's own
process_* and python_* families follow, from the client library's collectors in a
registry of their own, unless --web.disable-exporter-metrics.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as text_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from opta_exporter import __version__
from opta_exporter.config import Config
from opta_exporter.metrics.collector import tables
from opta_exporter.metrics.exposition import Exposition
from opta_exporter.relay.text import RelayText
from opta_exporter.store import Store
from opta_exporter.web import page
from opta_exporter.web.events import MAX_VIEWERS, LiveFeed, Stream, encode
from opta_exporter.web.negotiation import OPENMETRICS, gzip_accepted, negotiate
from opta_exporter.web.webconfig import RETRY_AFTER, AuthResult, BasicAuth

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


class ProcessMetrics:
    """The exporter process's own families (process_*, python_*), as every exporter
    serves them: the client library's collectors, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)  # nothing where there is no /proc (macOS)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def render(self, openmetrics: bool) -> bytes:
        """Families only: the one `# EOF` ends the whole exposition."""
        if openmetrics:
            text: bytes = openmetrics_latest(self.registry)  # type: ignore[no-untyped-call]
            return text.removesuffix(b"# EOF\n")
        return text_latest(self.registry)


def metrics_body(
    store: Store,
    relay: RelayText | None,
    accept: str,
    exposition: Exposition | None = None,
    process: ProcessMetrics | None = None,
) -> tuple[bytes, str]:
    """The exposition in the format the scraper asked for."""
    content_type = negotiate(accept)
    openmetrics = content_type == OPENMETRICS
    view = store.view()
    exposition = exposition or Exposition()
    parts = exposition.parts(tables(view.state, view.health, view.now, view.wall), openmetrics)
    if relay is not None:
        parts.append(relay.render(openmetrics))
    if process is not None:
        parts.append(process.render(openmetrics))
    if openmetrics:
        parts.append(b"# EOF\n")
    return b"".join(parts), content_type  # the only copy of the whole body


NO_STORE = ("Cache-Control", "no-store")


def make_app(
    store: Store, relay: RelayText | None, config: Config, live: LiveFeed | None = None
) -> App:
    """`live`: the live view's feed (the daemon's, which sets the relay's cadence); by
    default one without the relay's figures."""
    telemetry_path, lmx_url = config.telemetry_path, config.lmx_url
    feed = live or LiveFeed(store, None)
    exposition = Exposition()
    process = None if config.disable_exporter_metrics else ProcessMetrics()

    def metrics(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body, content_type = metrics_body(
            store, relay, environ.get("HTTP_ACCEPT", ""), exposition, process
        )
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            # gzip at level 1: higher levels cost many times the CPU for a little less size;
            # the CRC in the same pass
            body = zlib.compress(body, 1, wbits=31)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    def events(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not feed.join():
            text = f"at most {MAX_VIEWERS} viewers of the live events at once; retry later\n"
            start_response(
                "503 Service Unavailable",
                [
                    ("Content-Type", "text/plain"),
                    ("Retry-After", "5"),
                    ("Content-Length", str(len(text))),
                    NO_STORE,
                ],
            )
            return [text.encode()]
        start_response(
            "200 OK",
            [("Content-Type", "text/event-stream"), NO_STORE, ("X-Accel-Buffering", "no")],
        )
        return Stream(feed)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == telemetry_path:
            return metrics(environ, start_response)
        if path == "/api/live":
            body = encode(feed.document()[0])
            start_response(
                "200 OK",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    NO_STORE,
                ],
            )
            return [body]
        if path == "/api/live/events":
            return events(environ, start_response)
        if path == "/-/healthy":  # as Prometheus' own: 200 while it serves at all
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "8")])
            return [b"healthy\n"]
        if path == "/-/ready":  # for an orchestrator: 503 while it cannot serve LMX's truth
            ok, text = ready(store)
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(
                status, [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))]
            )
            return [text.encode()]
        if path == "/healthz":
            body = json.dumps(health(store)).encode()
            ctype = "application/json"
        elif path == "/":  # the live view, whole without JavaScript (page.py)
            doc = feed.document()[0]
            body = page.render(
                doc, version=__version__, lmx_url=lmx_url, telemetry_path=telemetry_path
            ).encode()
            ctype = "text/html; charset=utf-8"
        elif path.startswith("/static/") and (found := page.static(path[8:])) is not None:
            body, ctype = found
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    return app


def ready(store: Store) -> tuple[bool, str]:
    """Every thread runs, LMX was read once, and the event stream is open; else which not."""
    ok, text = store.ready()
    if ok:
        state = store.view().health.connection_state
        if state != "open":
            return False, f"not ready: event stream not open ({state})\n"
    return ok, text


def with_headers(app: App, headers: Iterable[tuple[str, str]]) -> App:
    """The web config's http_server_config.headers, on every answer (errors and 401s too);
    a header the app set itself is replaced, as exporter-toolkit's Header().Set does."""
    extra = list(headers)
    names = {name.lower() for name, _ in extra}

    def headed(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, response_headers: list[tuple[str, str]], *exc: Any) -> Any:
            kept = [(n, v) for n, v in response_headers if n.lower() not in names]
            return start_response(status, kept + extra, *exc)

        return app(environ, start)

    return headed


def require_auth(app: App, auth: BasicAuth) -> App:
    def guarded(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        result = auth.check(environ.get("HTTP_AUTHORIZATION"))
        if result is AuthResult.OK:
            return app(environ, start_response)
        if result is AuthResult.BUSY:  # more bcrypt checks in flight than allowed
            start_response(
                "429 Too Many Requests",
                [("Content-Type", "text/plain"), ("Retry-After", str(RETRY_AFTER))],
            )
            return [b"too many password checks at once, retry later\n"]
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="opta-exporter"')],
        )
        return [b"unauthorized\n"]

    return guarded
