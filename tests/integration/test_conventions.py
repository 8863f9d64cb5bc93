"""Exporter conventions on a real server on loopback against the simulator: self-metrics,
/-/healthy and /-/ready following the event stream, several listen addresses, the
connection cap from --web.max-requests, and the web config's response headers."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families

from lmx_simulator import LmxSimulator
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter, ListenError
from opta_exporter.web.webconfig import load_web_config
from tests.conftest import WAIT, wait_for
from tests.helpers import S3CRET_HASH, promtool_check

MakeExporter = Callable[..., Exporter]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def serving(state: LmxState, health: ExporterHealth) -> bool:
    """What /-/ready waits for: every thread up, LMX read, the stream open."""
    return (
        health.connection_state == "open"
        and bool(health.threads)
        and all(health.threads.values())
        and health.read_lmx()
    )


def test_self_metrics_on_a_real_scrape_in_both_formats(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    exporter = make_exporter(sim)
    wait_for(exporter, serving)
    text = requests.get(exporter.url + "/metrics", timeout=WAIT).text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"python_info", "python_gc_collections", "opta_lmx_up"} <= names
    promtool_check(text)
    om = requests.get(exporter.url + "/metrics", headers={"Accept": OPENMETRICS}, timeout=WAIT)
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    om_names = {family.name for family in om_parse(om.text)}  # type: ignore[no-untyped-call]
    assert {"python_info", "python_gc_collections", "opta_lmx_up"} <= om_names
    assert om.text.count("# EOF") == 1


def test_the_switch_turns_self_metrics_off(sim: LmxSimulator, make_exporter: MakeExporter) -> None:
    exporter = make_exporter(sim, disable_exporter_metrics=True)
    text = requests.get(exporter.url + "/metrics", timeout=WAIT).text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "opta_lmx_up" in names
    assert not [name for name in names if name.startswith(("process_", "python_"))]


def test_ready_follows_the_event_stream_and_healthy_does_not(
    make_sim: Callable[..., LmxSimulator], make_exporter: MakeExporter
) -> None:
    sim = make_sim()
    exporter = make_exporter(sim)
    wait_for(exporter, serving)
    ready = requests.get(exporter.url + "/-/ready", timeout=WAIT)
    assert (ready.status_code, ready.text) == (200, "ready\n")
    sim.stop()  # LMX goes away: the stream drops
    wait_for(exporter, lambda state, health: health.connection_state != "open")
    ready = requests.get(exporter.url + "/-/ready", timeout=WAIT)
    assert ready.status_code == 503
    assert ready.text.startswith("not ready: event stream not open (")
    healthy = requests.get(exporter.url + "/-/healthy", timeout=WAIT)
    assert (healthy.status_code, healthy.text) == (200, "healthy\n")
    assert requests.get(exporter.url + "/healthz", timeout=WAIT).status_code == 200


def test_every_listen_address_is_served(sim: LmxSimulator, make_exporter: MakeExporter) -> None:
    exporter = make_exporter(sim, extra_listen_addresses=(("127.0.0.1", 0),))
    ports = [server.port for server in exporter.servers]
    assert len(set(ports)) == 2
    for port in ports:
        answer = requests.get(f"http://127.0.0.1:{port}/-/healthy", timeout=WAIT)
        assert answer.text == "healthy\n"
    assert [server.address for server in exporter.servers] == [f"127.0.0.1:{p}" for p in ports]


def test_a_busy_address_is_a_listen_error_naming_it(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as info:
            make_exporter(sim, extra_listen_addresses=(("127.0.0.1", port),))
    assert info.value.address == f"127.0.0.1:{port}"


def test_the_process_says_which_address_it_cannot_listen_on() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "opta_exporter",
                "--web.listen-address=127.0.0.1:0",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_max_requests_caps_the_connections(sim: LmxSimulator, make_exporter: MakeExporter) -> None:
    exporter = make_exporter(sim, max_requests=1)
    kept = http.client.HTTPConnection("127.0.0.1", exporter.server.port, timeout=WAIT)
    try:
        kept.request("GET", "/-/healthy")
        assert kept.getresponse().read() == b"healthy\n"
        with socket.create_connection(("127.0.0.1", exporter.server.port), timeout=WAIT) as sock:
            assert sock.recv(1) == b""  # refused at accept: the one slot is taken
    finally:
        kept.close()


def test_web_config_headers_on_every_answer(
    tmp_path: Path, sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    web_file = tmp_path / "web.yml"
    web_file.write_text(
        f"basic_auth_users:\n  prom: '{S3CRET_HASH}'\n"
        "http_server_config:\n  headers:\n"
        "    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    )
    exporter = make_exporter(sim, web=load_web_config(str(web_file)))
    auth = ("prom", "s3cret")
    answers = [
        requests.get(exporter.url + "/metrics", auth=auth, timeout=WAIT),
        requests.get(exporter.url + "/nothing", auth=auth, timeout=WAIT),
        requests.get(exporter.url + "/-/healthy", auth=auth, timeout=WAIT),
        requests.get(exporter.url + "/metrics", timeout=WAIT),  # refused: 401
    ]
    assert [answer.status_code for answer in answers] == [200, 404, 200, 401]
    for answer in answers:
        assert answer.headers["X-Frame-Options"] == "deny"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
