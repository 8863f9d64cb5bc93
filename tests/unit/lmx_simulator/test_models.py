"""The LMX stand-in against real sockets: the model lifecycle (lmx_simulator/models.py) --
the load sequence LMX streams, the unload event, a request that publishes nothing."""

from __future__ import annotations

import requests

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


def test_a_request_moves_the_counters_and_publishes_nothing(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.load_model("m", emit=False)
    sim.record_request(
        "m", latency_sec=1.0, prompt_tokens=5, completion_tokens=1, stream=True, client_id="cli"
    )
    sim.publish("config_reloaded", {})  # the next thing on the stream: nothing came before
    assert event(c.read_chunk())[0] == "config_reloaded"
    totals = requests.get(f"{sim.url}/admin/metrics/json", timeout=3).json()
    assert (
        totals["total_requests"],
        totals["total_stream_requests"],
        totals["total_prompt_tokens"],
        totals["total_completion_tokens"],
        totals["per_client"],
    ) == (1, 1, 5, 1, {"cli": {"requests": 1, "errors": 0, "completion_tokens": 1}})
    (entry,) = requests.get(f"{sim.url}/admin/models", timeout=3).json()["loaded"]
    assert entry["request_count"] == 1
