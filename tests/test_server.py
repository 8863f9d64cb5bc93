"""The exporter's HTTP surface: metrics (both formats), landing page, health, 404."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from opta_exporter.daemon import Exporter
from opta_exporter.simulator import LmxSimulator
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


def test_the_server_sleeps_until_a_client_or_stop_and_stops_at_once() -> None:
    """No poll interval: stop() wakes the accept loop itself. Stopping a server that never
    started, or stopping twice, is harmless."""
    from opta_exporter.server import MetricsServer

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]

    MetricsServer("127.0.0.1", 0, app).stop()
    server = MetricsServer("127.0.0.1", 0, app)
    server.start()
    url = f"http://127.0.0.1:{server.port}/"
    assert [requests.get(url, timeout=WAIT).text for _ in range(3)] == ["ok\n"] * 3
    server.stop()
    assert not server._thread.is_alive()
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=WAIT)  # the port no longer answers
