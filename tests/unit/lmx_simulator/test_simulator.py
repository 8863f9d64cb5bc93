"""The LMX stand-in against real sockets: the simulator's life (lmx_simulator/simulator.py) --
closing its streams, a prompt stop with blocked streams, a restart on the same port."""

from __future__ import annotations

import time

import pytest
import requests

from tests.unit.lmx_simulator.harness import Harness


def test_close_streams_ends_cleanly_and_keeps_listening(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.close_streams()
    assert c.read_chunk() == b""
    assert sim.wait_for(lambda: sim.subscriber_count() == 0)
    assert h.client(sim).status == 200
    assert sim.wait_for_subscribers(1)


def test_stop_is_prompt_with_open_and_blocked_streams(h: Harness) -> None:
    sim = h.sim(zombie_on_overflow=False)
    idle = h.client(sim)
    h.client(sim, rcvbuf=4096)  # never reads: its handler blocks in a write
    assert sim.wait_for_subscribers(2)
    for i in range(100):
        sim.publish("flood", {"i": i, "padding": "x" * 65536})
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 0.5
    assert idle.read_to_eof().count(b"event: flood") <= 100  # then the connection ends
    sim.stop()  # idempotent


def test_restart_rebinds_the_same_port_with_fresh_counters(h: Harness) -> None:
    sim = h.sim()
    port = sim.port
    sim.record_request("m")
    with requests.Session() as session:  # its kept-alive connection must not outlive stop()
        assert "lmx_requests_total 1" in session.get(f"{sim.url}/admin/metrics", timeout=3).text
        sim.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(f"{sim.url}/admin/status", timeout=3)
        sim.start()
        assert sim.port == port
        assert "lmx_requests_total 0" in session.get(f"{sim.url}/admin/metrics", timeout=3).text
    assert h.client(sim).status == 200
    assert sim.wait_for_subscribers(1)
