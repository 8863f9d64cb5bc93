"""The WSGI app (web/app.py), called as the server calls it: no socket, an environ in,
status, headers and body out."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable
from typing import Any

import pytest

from opta_exporter import __version__
from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth, SourceStatus
from opta_exporter.core.state import LmxState
from opta_exporter.store import Store
from opta_exporter.web.app import App, make_app, require_auth
from opta_exporter.web.webconfig import AuthResult, BasicAuth
from tests.fakes import FakeClock
from tests.helpers import S3CRET_HASH, parse

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Answer:
    def __init__(self, app: App, path: str, **headers: str) -> None:
        environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
        self.status = ""
        self.headers: dict[str, str] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            self.status, self.headers = status, dict(headers)

        body: Iterable[bytes] = app(environ, start_response)
        self.body = b"".join(body)


def app_for(store: Store | None = None, **config: Any) -> App:
    store = store or Store(LmxState(), ExporterHealth(), FakeClock())
    return make_app(store, None, Config(lmx_url="http://lmx.test:1234", **config))


def test_metrics_in_text_format_by_default() -> None:
    answer = Answer(app_for(), "/metrics")
    assert answer.status == "200 OK"
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert answer.headers["Content-Length"] == str(len(answer.body))
    samples = parse(answer.body.decode())
    assert samples[("opta_lmx_up", ())] == 0.0
    assert b"# EOF" not in answer.body


def test_openmetrics_when_asked_with_its_eof() -> None:
    answer = Answer(app_for(), "/metrics", accept=OPENMETRICS)
    assert answer.headers["Content-Type"].startswith("application/openmetrics-text")
    assert answer.body.endswith(b"# EOF\n")
    assert answer.body.count(b"# EOF") == 1


def test_gzip_only_when_accepted() -> None:
    # without the process families: a garbage collection between the two would differ
    plain = Answer(app_for(disable_exporter_metrics=True), "/metrics")
    zipped = Answer(
        app_for(disable_exporter_metrics=True), "/metrics", accept_encoding="gzip, deflate"
    )
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Content-Length"] == str(len(zipped.body))
    assert gzip.decompress(zipped.body) == plain.body


def test_the_telemetry_path_is_configurable() -> None:
    app = app_for(telemetry_path="/lmx/metrics")
    assert Answer(app, "/lmx/metrics").status == "200 OK"
    assert Answer(app, "/metrics").status.startswith("404")


def test_healthz_says_the_stream_state_and_event_age() -> None:
    clock = FakeClock()
    store = Store(LmxState(), ExporterHealth(), clock)
    store.set_connection("open")
    store.ingest("heartbeat", "{}")
    clock.advance(2.5)
    answer = Answer(app_for(store), "/healthz")
    assert answer.status == "200 OK"
    assert answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.body) == {
        "status": "ok",
        "connection_state": "open",
        "lmx_up": True,
        "last_event_age_seconds": 2.5,
        "version": __version__,
    }


def test_landing_page_escapes_what_it_shows() -> None:
    app = make_app(
        Store(LmxState(), ExporterHealth(), FakeClock()),
        None,
        Config(lmx_url="http://lmx.test:1234/<b>", telemetry_path="/m<x>"),
    )
    answer = Answer(app, "/")
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    page = answer.body.decode()
    assert "&lt;b&gt;" in page
    assert "<b>" not in page
    assert 'href="/m&lt;x&gt;"' in page
    assert "last event never" in page


def test_unknown_paths_are_404() -> None:
    answer = Answer(app_for(), "/admin/events")
    assert answer.status == "404 Not Found"
    assert answer.body == b"not found\n"


@pytest.mark.parametrize(
    ("authorization", "allowed"),
    [
        (None, False),
        ("Bearer token", False),
        ("Basic " + base64.b64encode(b"prom:wrong").decode(), False),
        ("Basic " + base64.b64encode(b"prom:s3cret").decode(), True),
    ],
)
def test_basic_auth_guards_every_path(authorization: str | None, allowed: bool) -> None:
    app = require_auth(app_for(), BasicAuth({"prom": S3CRET_HASH.encode()}))
    headers = {} if authorization is None else {"authorization": authorization}
    for path in ("/metrics", "/", "/healthz", "/nothing"):
        answer = Answer(app, path, **headers)
        if allowed:
            assert not answer.status.startswith("401")
        else:
            assert answer.status == "401 Unauthorized"
            assert answer.headers["WWW-Authenticate"] == 'Basic realm="opta-exporter"'


def test_busy_basic_auth_is_429_with_retry_after() -> None:
    """Every bcrypt slot taken: a guess is told to come back, not told it is wrong."""

    class Busy(BasicAuth):
        def check(self, header: str | None) -> AuthResult:
            return AuthResult.BUSY

    answer = Answer(require_auth(app_for(), Busy({"prom": S3CRET_HASH.encode()})), "/metrics")
    assert answer.status == "429 Too Many Requests"
    assert answer.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("accept_encoding", "zipped"),
    [
        ("gzip", True),
        ("gzip;q=0.5, identity", True),
        ("GZIP", True),
        ("*", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, deflate", False),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("deflate", False),
        ("gzip;q=nope", False),
        ("", False),
    ],
)
def test_gzip_honours_q_values(accept_encoding: str, zipped: bool) -> None:
    """`gzip;q=0` is a refusal, not a request: the old substring test sent gzip anyway."""
    answer = Answer(app_for(), "/metrics", accept_encoding=accept_encoding)
    assert ("Content-Encoding" in answer.headers) is zipped
    assert answer.body.startswith(b"\x1f\x8b") is zipped


TEXT = "text/plain; version=0.0.4; charset=utf-8"
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("", TEXT),
        (OPENMETRICS, OM),
        ("application/openmetrics-text", OM),
        ("application/openmetrics-text; version=9.9.9", TEXT),
        ("application/openmetrics-text; version=9.9.9, application/openmetrics-text;q=0.5", OM),
        ("application/openmetrics-text; version=x", TEXT),
        ("application/openmetrics-text; version=0.0.1", TEXT),
        ("application/openmetrics-text;version=1.0.0;q=0.2, text/plain;q=0.9", TEXT),
        ("text/plain;version=0.0.4;q=0.3, application/openmetrics-text;version=1.0.0;q=0.6", OM),
        ("application/openmetrics-text;q=0", TEXT),
        ("application/openmetrics-text;q=junk", TEXT),
        (
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
            "application/openmetrics-text;version=0.0.1;q=0.5,"
            "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
            "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            OM,
        ),  # Prometheus 3's scrape Accept
        ("image/png", TEXT),
    ],
)
def test_the_format_is_negotiated_to_one_we_write(accept: str, content_type: str) -> None:
    """Only versions we write are ever claimed: an unknown OpenMetrics version is not
    echoed back (the library echoed 9.9.9, and failed with a 500 on `version=x`)."""
    answer = Answer(app_for(), "/metrics", accept=accept)
    assert answer.status == "200 OK"
    assert answer.headers["Content-Type"] == content_type
    assert answer.body.endswith(b"# EOF\n") is (content_type == OM)


def test_ready_only_when_every_thread_runs_lmx_was_read_and_the_stream_is_open() -> None:
    store = Store(LmxState(), ExporterHealth(), FakeClock())
    snapshots, relay = store.thread("snapshots"), store.thread("relay")
    snapshots.running(True)
    relay.running(True)
    answer = Answer(app_for(store), "/-/ready")
    assert (answer.status, answer.body) == (
        "503 Service Unavailable",
        b"not ready: LMX not read yet\n",
    )
    store.health.sources["status"] = SourceStatus(15.0)
    store.source_read("status", True)
    answer = Answer(app_for(store), "/-/ready")  # read, but no event stream yet
    assert (answer.status, answer.body) == (
        "503 Service Unavailable",
        b"not ready: event stream not open (connecting)\n",
    )
    store.set_connection("open")
    answer = Answer(app_for(store), "/-/ready")
    assert (answer.status, answer.body) == ("200 OK", b"ready\n")
    store.set_connection("backoff", 2.0, "eof")  # the stream dropped
    answer = Answer(app_for(store), "/-/ready")
    assert (answer.status, answer.body) == (
        "503 Service Unavailable",
        b"not ready: event stream not open (backoff)\n",
    )
    store.set_connection("open")
    relay.running(False)  # the thread ended while the daemon runs
    answer = Answer(app_for(store), "/-/ready")
    assert answer.status == "503 Service Unavailable"
    assert answer.body == b"not ready: thread(s) not running: relay\n"
    assert Answer(app_for(store), "/-/healthy").status == "200 OK"  # it still serves
    assert Answer(app_for(store), "/healthz").status == "200 OK"  # /healthz stays as it was
