"""The three LMX behaviours that make a naive consumer wrong while looking healthy,
against the simulator in its default (real-LMX) mode."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
import requests

from lmx_simulator import LmxSimulator
from opta_exporter.daemon import Exporter
from tests.conftest import WAIT, Gate, is_open, scrape, value, wait_for

MakeExporter = Callable[..., Exporter]
MakeSim = Callable[..., LmxSimulator]


def test_silent_connect_landing_and_healthz_say_open(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    exporter = make_exporter(sim)  # heartbeat 30 s: LMX sends no byte during this test
    wait_for(exporter, is_open)
    assert (
        requests.get(exporter.url + "/healthz", timeout=WAIT).json()["connection_state"] == "open"
    )
    assert "<strong>open</strong>" in requests.get(exporter.url + "/", timeout=WAIT).text
    samples = scrape(exporter)
    assert value(samples, "opta_lmx_up") == 1.0
    assert value(samples, "opta_exporter_resyncs_total", outcome="success") == 1.0
    assert value(samples, "opta_exporter_last_event_timestamp_seconds") is None


def test_bursts_at_lmx_pace_lose_nothing(sim: LmxSimulator, make_exporter: MakeExporter) -> None:
    """Several hundred events at ~2,000/s (LMX tops out at 6-9k/s) never fill the
    100-event queue: the exporter is not the slow subscriber."""
    exporter = make_exporter(sim)
    wait_for(exporter, is_open)
    pace = threading.Event()  # never set: wait() is only the publisher's pacing
    for burst in range(3):
        for i in range(300):
            sim.publish(
                "model_compatibility_recorded",
                {"model_id": f"m{i % 7}", "backend": "mlx", "outcome": "pass", "ts": i},
            )
            if i % 10 == 9:
                pace.wait(0.005)
        expected = 300 * (burst + 1)
        wait_for(exporter, lambda s, h: sum(s.compat.values()) == expected)  # noqa: B023
    assert sim.zombie_count() == 0
    samples = scrape(exporter)
    assert value(samples, "opta_lmx_events_total", event="model_compatibility_recorded") == 900.0


def test_zombie_subscription_is_replaced(
    make_sim: MakeSim, make_exporter: MakeExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """Overflow the queue on purpose: LMX keeps the stream open with heartbeats only, so
    only a snapshot that disagrees shows it; the exporter must subscribe again."""
    caplog.set_level(logging.INFO)
    sim = make_sim(queue_size=5, heartbeat_interval=0.3)
    sim.load_model("a", memory_gb=1.0)
    exporter = make_exporter(sim, snapshot_interval=0.5)
    wait_for(exporter, is_open)
    assert sim.wait_for_subscribers(1, WAIT)
    for _ in range(2000):  # far faster than LMX can publish: the queue overflows
        sim.publish("heartbeat", {"timestamp": 1.0})
        if sim.zombie_count():
            break
    assert sim.zombie_count() == 1, "the simulator did not drop the subscriber"
    sim.load_model("b", memory_gb=2.0)  # the zombie never hears of it
    sim.unload_model("a")
    wait_for(exporter, lambda s, h: h.reconnects["dropped"] == 1 and is_open(s, h))
    assert sim.wait_for(lambda: sim.zombie_count() == 0, WAIT)
    wait_for(exporter, lambda s, h: set(s.loaded) == {"b"})
    sim.load_model("c", memory_gb=1.0)  # the new subscription hears events again
    wait_for(exporter, lambda s, h: "c" in s.loaded)
    samples = scrape(exporter)
    assert value(samples, "opta_exporter_reconnects_total", reason="dropped") == 1.0
    assert value(samples, "opta_exporter_state_drift_total") == 2.0
    assert value(samples, "opta_lmx_model_loaded", model="c", format="mlx") == 1.0
    assert value(samples, "opta_lmx_model_memory_bytes", model="b") == 2.0 * 1024**3
    assert value(samples, "opta_lmx_model_loaded", model="a", format="unknown") is None
    dropped = [r for r in caplog.records if "stopped delivering" in r.getMessage()]
    assert len(dropped) == 1


def test_subscriber_limit_backs_off_and_warns_once(
    make_sim: MakeSim, make_exporter: MakeExporter, caplog: pytest.LogCaptureFixture
) -> None:
    sim = make_sim(max_subscribers=2, reserved_subscribers=1)  # one outside slot
    with requests.get(sim.url + "/admin/events", stream=True, timeout=WAIT) as squatter:
        assert squatter.status_code == 200
        assert sim.wait_for_subscribers(1, WAIT)
        gate = Gate()
        gate.release()
        exporter = make_exporter(sim, sleep=gate, backoff_base=1.0, backoff_cap=8.0)
        wait_for(exporter, lambda s, h: h.reconnects["eof"] >= 5)
    assert gate.waits[:5] == [1.0, 2.0, 4.0, 8.0, 8.0]  # never reset: nothing was delivered
    hints = [r for r in caplog.records if "subscriber limit" in r.getMessage()]
    assert len(hints) == 1
    assert hints[0].levelno == logging.WARNING
