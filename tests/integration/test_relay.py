"""The relay against real servers: the simulator's text (its weird model relayed escaped; a
stop and a restart with counters from zero), the relay text rendered once per read, and
a scrape during a read that hangs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from lmx_simulator import LmxSimulator
from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter
from opta_exporter.relay import text
from opta_exporter.relay.families import RelayCollector
from opta_exporter.relay.reader import RelayReader
from opta_exporter.relay.text import RelayText
from opta_exporter.store import Store
from tests.conftest import WAIT
from tests.fakes import FakeClock
from tests.helpers import promtool_check
from tests.relay_bodies import (
    HIST,
    KEY,
    WEIRD,
    WEIRD_ESCAPED,
    assert_reads_as_the_library,
    exposition,
    names,
    registry_for,
)


@pytest.fixture
def keyed_sim() -> Iterator[LmxSimulator]:
    with LmxSimulator(admin_key=KEY) as simulator:
        yield simulator


def test_relay_parse_reads_the_simulators_text_as_the_library_does() -> None:
    with LmxSimulator() as sim:
        sim.load_model("a/b", fmt="mlx")
        sim.record_request("a/b", latency_sec=0.2, stream=True)
        body = sim.metrics_text()
    assert_reads_as_the_library(body)


def test_simulator_weird_model_relayed_escaped(keyed_sim: LmxSimulator) -> None:
    for latency in (0.2, 0.7, 3.0):
        keyed_sim.record_request(WEIRD, latency_sec=latency, completion_tokens=5)
    keyed_sim.record_request("mlx-community/Qwen3-8B-4bit", latency_sec=0.05)
    clock = FakeClock()
    reader = RelayReader(Config(lmx_url=keyed_sim.url, admin_key=KEY), requests.Session(), clock)
    registry = registry_for(reader)
    assert reader.read_once()
    _, path, headers = keyed_sim.requests_seen[-1]
    assert (path, headers.get("X-Admin-Key")) == ("/admin/metrics", KEY)
    got = registry.get_sample_value
    assert got("lmx_model_requests_total", {"model": WEIRD}) == 3
    assert got("lmx_model_tokens_total", {"model": WEIRD}) == 15
    assert got("lmx_requests_total") == 4
    assert got(f"{HIST}_bucket", {"model": WEIRD, "le": "0.5"}) == 1
    assert got(f"{HIST}_bucket", {"model": WEIRD, "le": "1"}) == 2
    assert got(f"{HIST}_bucket", {"model": WEIRD, "le": "+Inf"}) == 3
    assert got(f"{HIST}_sum", {"model": WEIRD}) == pytest.approx(3.9)
    assert got(f"{HIST}_count", {"model": "mlx-community/Qwen3-8B-4bit"}) == 1
    assert got("opta_exporter_relay_samples_repaired_total") == 3 + 12  # 3 counters + histogram
    text = exposition(registry)
    assert f'lmx_model_requests_total{{model="{WEIRD_ESCAPED}"}} 3.0' in text
    assert "lmx_uptime_seconds" not in text
    promtool_check(text)


def test_simulator_stopped_then_restarted(keyed_sim: LmxSimulator) -> None:
    keyed_sim.record_request(WEIRD)
    keyed_sim.record_request(WEIRD)
    clock = FakeClock()
    config = Config(lmx_url=keyed_sim.url, admin_key=KEY, relay_interval=15.0)
    reader = RelayReader(config, requests.Session(), clock)
    registry = registry_for(reader)
    got = registry.get_sample_value
    assert reader.read_once()
    assert got("lmx_model_requests_total", {"model": WEIRD}) == 2

    keyed_sim.stop()
    for _ in range(2):
        clock.advance(15)
        assert not reader.read_once()
    assert got("lmx_model_requests_total", {"model": WEIRD}) == 2  # 2 intervals: still shown
    clock.advance(1)
    assert not any(n.startswith("lmx_") for n in names(registry))
    assert got("opta_exporter_relay_reads_total", {"outcome": "failure"}) == 2
    assert got("opta_exporter_relay_last_success_timestamp_seconds") == clock.wall - 31

    keyed_sim.start()  # same port; LMX's counters restart at zero
    assert reader.read_once()
    assert got("lmx_requests_total") == 0
    assert got("lmx_model_requests_total", {"model": WEIRD}) is None
    keyed_sim.record_request(WEIRD)
    assert reader.read_once()
    assert got("lmx_model_requests_total", {"model": WEIRD}) == 1
    assert got("opta_exporter_relay_reads_total", {"outcome": "success"}) == 3
    promtool_check(exposition(registry))


def test_two_hundred_client_ids_stay_within_the_cap(keyed_sim: LmxSimulator) -> None:
    """Any caller sets X-Client-Id: 200 callers of the simulator give LMX 200 `client`
    series per family; the relay keeps the first --max-models of each and counts the rest."""
    for i in range(200):
        keyed_sim.record_request("m", completion_tokens=1, client_id=f"caller-{i:03d}")
    config = Config(lmx_url=keyed_sim.url, admin_key=KEY, max_models=100)
    reader = RelayReader(config, requests.Session(), FakeClock())
    registry = registry_for(reader)
    assert reader.read_once()
    for family in ("lmx_client_requests_total", "lmx_client_tokens_total"):
        clients = {
            s.labels["client"]
            for metric in registry.collect()
            for s in metric.samples
            if s.name == family
        }
        assert len(clients) == 100, family
    dropped = registry.get_sample_value(
        "opta_exporter_relay_samples_dropped_total", {"reason": "cap"}
    )
    assert dropped == 200  # 100 refused callers x the two families they appear in
    assert reader.read_once()  # the same callers again: the same 100 kept, sticky
    assert registry.get_sample_value("lmx_client_requests_total", {"client": "caller-000"}) == 1


def test_the_window_holds_tokens_per_second_from_lmx_counters_across_a_restart(
    keyed_sim: LmxSimulator,
) -> None:
    """Each sample is Δ lmx_completion_tokens_total / Δt between two reads; the pair
    around an LMX restart (its counters back to zero) gives none."""
    clock = FakeClock()
    store = Store(LmxState(), ExporterHealth(), clock)
    config = Config(lmx_url=keyed_sim.url, admin_key=KEY, relay_interval=15.0)
    reader = RelayReader(config, requests.Session(), clock, on_tokens=store.count_tokens)

    def rates() -> list[float]:
        return [rate for _, rate in store.view().state.throughput.window.samples(clock.wall)]

    keyed_sim.record_request("m", completion_tokens=100)
    assert reader.read_once()
    assert rates() == []  # one read is no rate
    keyed_sim.record_request("m", completion_tokens=250)
    keyed_sim.record_request("m", completion_tokens=50)
    clock.advance(15)
    assert reader.read_once()
    assert rates() == [20.0]  # 300 tokens in 15 s
    clock.advance(10)
    assert reader.read_once()
    assert rates() == [20.0, 0.0]  # idle is a true zero

    keyed_sim.stop()
    keyed_sim.start()  # same port; LMX's counters restart at zero
    keyed_sim.record_request("m", completion_tokens=40)
    clock.advance(15)
    assert reader.read_once()
    assert rates() == [20.0, 0.0]  # 400 -> 40 is a restart, not -24 tokens/s
    keyed_sim.record_request("m", completion_tokens=60)
    clock.advance(20)
    assert reader.read_once()
    assert rates() == [20.0, 0.0, 3.0]
    clock.advance(301)  # five quiet minutes later, the window has let them all go
    assert rates() == []


def test_relay_text_is_the_library_text_and_rendered_once_per_read(sim: LmxSimulator) -> None:

    from opta_exporter.config import Config
    from opta_exporter.relay.reader import RelayReader

    sim.record_request('we"ird\\x', latency_sec=0.2)
    reader = RelayReader(Config(lmx_url=sim.url), requests.Session())
    assert reader.read_once()
    registry = CollectorRegistry()
    registry.register(RelayCollector(reader))
    relay = RelayText(reader)
    first = relay.render(False)
    assert first == generate_latest(registry)
    assert relay.render(False) is first  # no change since the read: the same text
    om = relay.render(True)
    assert b"# EOF" not in om
    assert b"lmx_model_requests_total" in om
    sim.record_request('we"ird\\x', latency_sec=0.2)
    assert reader.read_once()
    second = relay.render(False)
    assert second is not first
    assert b'lmx_model_requests_total{model="we\\"ird\\\\x"} 2.0' in second


class HangingLmx(ThreadingHTTPServer):
    """Answers /admin/metrics only once `release` is set; `entered` says a read is held."""

    daemon_threads = True

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _HangingHandler)


class _HangingHandler(BaseHTTPRequestHandler):
    server: HangingLmx

    def do_GET(self) -> None:
        self.server.entered.set()
        self.server.release.wait(WAIT)
        body = b"# TYPE lmx_requests_total counter\nlmx_requests_total 5\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


def test_a_scrape_during_a_slow_read_returns_at_once() -> None:
    lmx = HangingLmx()
    serving = threading.Thread(target=lmx.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    stop = threading.Event()
    url = f"http://127.0.0.1:{lmx.server_address[1]}"
    reader = RelayReader(Config(lmx_url=url, relay_interval=60.0), requests.Session())
    registry = registry_for(reader)
    relay = threading.Thread(target=reader.run, args=(stop,))
    relay.start()
    try:
        assert lmx.entered.wait(WAIT)
        text = exposition(registry)  # while the read is held by LMX
        assert reader.view().reads == {"success": 0, "failure": 0}
        assert not lmx.release.is_set()
        assert 'opta_exporter_relay_reads_total{outcome="success"} 0.0' in text
    finally:
        lmx.release.set()
        assert reader.wait_for_reads(1, WAIT)
        stop.set()
        reader.wake()  # ends the wait between reads, as the daemon's stop does
        relay.join(WAIT)
        lmx.shutdown()
        lmx.server_close()
        serving.join(WAIT)
    assert not relay.is_alive()
    assert registry.get_sample_value("lmx_requests_total") == 5


def test_the_relay_thread_writes_the_text_after_each_read(
    make_exporter: Callable[..., Exporter], sim: LmxSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon hands each read's text to the relay thread, not to the next scrape."""
    writers: list[str] = []
    real = text.write

    def spy(metrics: Iterable[Metric], openmetrics: bool) -> bytes:
        writers.append(threading.current_thread().name)
        return real(metrics, openmetrics)

    monkeypatch.setattr(text, "write", spy)
    exporter = make_exporter(sim, relay_interval=0.05)
    relay = exporter.relay
    assert relay is not None
    assert relay.wait_for_reads(1, WAIT)
    resp = requests.get(exporter.url + "/metrics", timeout=WAIT)  # text format from now on
    assert "opta_exporter_relay_reads_total" in resp.text
    done = sum(relay.view().reads.values())
    assert relay.wait_for_reads(done + 2, WAIT)  # the read after `done` was handed on
    assert "relay" in writers
