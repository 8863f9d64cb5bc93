"""The LMX stand-in against real sockets: the model lifecycle (lmx_simulator/models.py) --
the load sequence LMX streams, the unload event, the request-events switch."""

from __future__ import annotations

from tests.helpers import LOAD_SEQUENCE
from tests.unit.lmx_simulator.harness import Harness, event


def test_load_streams_lmx_sequence_and_unload_sends_one_event(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.load_model("m", fmt="gguf", memory_gb=3.0)
    events = [event(c.read_chunk()) for _ in range(8)]
    assert [name for name, _ in events] == list(LOAD_SEQUENCE)
    readiness = [(d["previous_state"], d["state"]) for n, d in events if n.startswith("model_r")]
    assert readiness == [
        ("unknown", "admitted"),
        ("admitted", "loading"),
        ("loading", "canary_pending"),
        ("canary_pending", "routable"),
    ]
    assert events[3][1] == {
        "model_id": "m",
        "format": "gguf",
        "memory_gb": 3.0,
        "duration_sec": 1.5,
    }
    assert {"ts", "metadata"} <= events[6][1].keys()
    sim.load_model("quiet", emit=False)
    sim.unload_model("m", reason="lru")
    assert event(c.read_chunk()) == (
        "model_unloaded",
        {"model_id": "m", "memory_freed_gb": 3.0, "reason": "lru"},
    )


def test_request_events_switch(h: Harness) -> None:
    sim = h.sim(emit_request_events=True)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.record_request("m", latency_sec=1.0, ttft_sec=0.1)
    name, data = event(c.read_chunk())
    assert name == "request_completed"
    assert data["ttft_sec"] == 0.1
    assert "tokens_per_second" not in data
