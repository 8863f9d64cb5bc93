"""The exporter's HTTP surface: metrics (both formats, gzip, the relayed families), landing
page, health, 404; and the HTTP server's connections."""

from __future__ import annotations

import gzip
import http.client
import socket
from collections.abc import Callable, Iterator

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from lmx_simulator import LmxSimulator
from opta_exporter.daemon import Exporter
from opta_exporter.web.httpd import MetricsServer
from tests.conftest import WAIT, is_open, wait_for

MakeExporter = Callable[..., Exporter]


def test_landing_page_links_metrics_and_shows_state(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    exporter = make_exporter(sim, telemetry_path="/custom")
    wait_for(exporter, is_open)
    page = requests.get(exporter.url + "/", timeout=WAIT)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert 'href="/custom"' in page.text
    assert "<strong>open</strong>" in page.text
    assert requests.get(exporter.url + "/custom", timeout=WAIT).status_code == 200
    assert requests.get(exporter.url + "/metrics", timeout=WAIT).status_code == 404


def test_healthz_reports_state_and_event_age(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    exporter = make_exporter(sim)
    wait_for(exporter, is_open)
    body = requests.get(exporter.url + "/healthz", timeout=WAIT).json()
    assert body["status"] == "ok"
    assert body["connection_state"] == "open"
    assert body["lmx_up"] is True
    assert body["last_event_age_seconds"] is None
    sim.publish("heartbeat", {"timestamp": 1.0})
    wait_for(exporter, lambda s, h: h.last_event_wall is not None)
    age = requests.get(exporter.url + "/healthz", timeout=WAIT).json()["last_event_age_seconds"]
    assert isinstance(age, float)
    assert age >= 0


def test_healthz_is_200_while_lmx_is_down(
    make_sim: Callable[..., LmxSimulator], make_exporter: MakeExporter
) -> None:
    sim = make_sim()
    sim.stop()  # nothing listens at the LMX address now
    exporter = make_exporter(sim)
    wait_for(exporter, lambda s, h: h.reconnects["connect_error"] >= 1)
    resp = requests.get(exporter.url + "/healthz", timeout=WAIT)
    assert resp.status_code == 200
    assert resp.json()["lmx_up"] is False


def test_openmetrics_when_the_scraper_asks(sim: LmxSimulator, make_exporter: MakeExporter) -> None:
    exporter = make_exporter(sim)
    wait_for(exporter, is_open)
    resp = requests.get(
        exporter.url + "/metrics",
        timeout=WAIT,
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    names = {family.name for family in om_parse(resp.text)}  # type: ignore[no-untyped-call]
    assert "opta_lmx_up" in names
    assert "opta_exporter_reconnects" in names  # OpenMetrics names counters without _total
    plain = requests.get(exporter.url + "/metrics", timeout=WAIT)
    assert plain.headers["Content-Type"].startswith("text/plain")


def test_unknown_path_is_404(sim: LmxSimulator, make_exporter: MakeExporter) -> None:
    exporter = make_exporter(sim)
    assert requests.get(exporter.url + "/nope", timeout=WAIT).status_code == 404


def test_served_metrics_gzip_formats_filter_and_relay(
    sim: LmxSimulator, make_exporter: Callable[..., Exporter]
) -> None:
    sim.record_request("m", latency_sec=0.2)
    exporter = make_exporter(sim, relay_interval=30.0)
    wait_for(exporter, is_open)
    assert exporter.relay is not None
    assert exporter.relay.wait_for_reads(1, WAIT)
    url = exporter.url + "/metrics"
    om = requests.get(
        url,
        timeout=WAIT,
        headers={
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            "Accept-Encoding": "gzip",
        },
        stream=True,
    )
    assert om.headers["Content-Encoding"] == "gzip"
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    text = gzip.decompress(om.raw.read()).decode()
    assert text.endswith("# EOF\n")
    assert text.count("# EOF") == 1
    names = {f.name for f in om_parse(text)}  # type: ignore[no-untyped-call]
    assert {"opta_lmx_up", "lmx_model_requests", "opta_exporter_relay_reads"} <= names
    plain = requests.get(url, timeout=WAIT)
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'lmx_model_requests_total{model="m"} 1.0' in plain.text


def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
    """Answers with the path it was asked for; /boom is a bug in the app."""
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("a bug")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"ok {environ['PATH_INFO']}\n".encode()]


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    server = MetricsServer("127.0.0.1", 0, app, idle_timeout=0.5)
    server.start()
    yield server
    server.stop()


def test_one_connection_serves_many_scrapes(server: MetricsServer) -> None:
    """HTTP/1.1 keep-alive, as Prometheus scrapes: no new connection or thread per scrape."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
    sockets = set()
    for path in ("/a", "/b%20c", "/d?x=1"):
        conn.request("GET", path)
        resp = conn.getresponse()
        assert (resp.status, resp.version, resp.will_close) == (200, 11, False)
        assert resp.getheader("Server", "").startswith("opta-exporter/")
        sockets.add(conn.sock)
        assert resp.read() == f"ok {path.split('?')[0].replace('%20', ' ')}\n".encode()
    assert len(sockets) == 1
    conn.request("HEAD", "/a")
    head = conn.getresponse()
    assert (head.status, head.getheader("Content-Length"), head.read()) == (200, "6", b"")
    conn.request("GET", "/e")  # no body followed the HEAD's headers on the kept connection
    assert conn.getresponse().read() == b"ok /e\n"
    assert len(sockets | {conn.sock}) == 1
    conn.close()


def test_http10_and_connection_close_are_answered_then_closed(server: MetricsServer) -> None:
    for request in (b"GET /x HTTP/1.0\r\n\r\n", b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
            sock.sendall(request)
            reply = _until_eof(sock)
        assert reply.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")), reply
        assert reply.endswith(b"\r\n\r\nok /x\n")


def _until_eof(sock: socket.socket) -> bytes:
    """Everything the server sends before it closes (the socket's timeout bounds it)."""
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
    return b"".join(parts)


def test_an_idle_kept_connection_is_closed_by_the_server(server: MetricsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _until_eof(sock).endswith(b"ok /x\n")  # EOF after idle_timeout, not WAIT


def test_stop_ends_kept_connections(server: MetricsServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
    conn.request("GET", "/a")
    assert conn.getresponse().read() == b"ok /a\n"
    assert conn.sock is not None
    sock = conn.sock
    server.stop()
    sock.settimeout(0.25 * server._httpd.idle_timeout)  # well before the idle timeout
    assert sock.recv(1) == b""
    conn.close()


def test_connections_over_the_limit_are_refused_until_one_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MetricsServer("127.0.0.1", 0, app, max_connections=2)
    server.start()
    try:
        kept = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT) for _ in "ab"]
        for conn in kept:
            conn.request("GET", "/k")
            assert conn.getresponse().read() == b"ok /k\n"
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
                assert sock.recv(1) == b""  # closed at once, before any request
        assert caplog.text.count("new ones refused") == 1  # once per spell, not per refusal
        kept.pop().close()  # the server sees EOF and frees the slot
        assert _get_once_admitted(server.port, "/n").endswith(b"ok /n\n")
        for conn in kept:
            conn.close()
    finally:
        server.stop()


def _get_once_admitted(port: int, path: str) -> bytes:
    """The server frees a slot when it has seen the other connection's EOF, a moment after
    the close: a refusal shows as an empty reply, so connect again (bounded)."""
    for _ in range(500):
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            try:
                sock.sendall(f"GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
                reply = _until_eof(sock)
            except ConnectionError:  # refused while we were still sending
                continue
        if reply:
            return reply
    raise AssertionError("no slot came free")


def test_an_app_error_is_a_500_and_the_server_goes_on(
    server: MetricsServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{server.port}"
    assert requests.get(url + "/boom", timeout=WAIT).status_code == 500
    assert "serving /boom failed" in caplog.text
    assert requests.get(url + "/a", timeout=WAIT).text == "ok /a\n"
    assert requests.post(url + "/a", timeout=WAIT).status_code == 501


def test_the_server_sleeps_until_a_client_or_stop_and_stops_at_once() -> None:
    """No poll interval: stop() wakes the accept loop itself. Stopping a server that never
    started, or stopping twice, is harmless."""
    MetricsServer("127.0.0.1", 0, app).stop()
    server = MetricsServer("127.0.0.1", 0, app)
    server.start()
    url = f"http://127.0.0.1:{server.port}/"
    assert [requests.get(url, timeout=WAIT).text for _ in range(3)] == ["ok /\n"] * 3
    server.stop()
    assert not server._thread.is_alive()
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=WAIT)  # the port no longer answers
