"""The LMX stand-in against real sockets: the JSON documents (lmx_simulator/docs.py) --
/admin/status and /admin/memory follow the model state."""

from __future__ import annotations

import re

import pytest
import requests

from tests.unit.lmx_simulator.harness import Harness


def test_status_and_memory_follow_the_model_state(h: Harness) -> None:
    sim = h.sim(memory_total_gb=100.0, max_concurrent_requests=2)
    sim.load_model("a", memory_gb=4.5)
    sim.load_model("b", memory_gb=3.5, emit=False)
    sim.set_in_flight(1)
    r = requests.get(f"{sim.url}/admin/status", timeout=3)
    assert r.headers["Content-Length"] == str(len(r.content))
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    status = r.json()
    assert status["models"] == ["a", "b"]
    assert status["loaded_models"] == 2
    assert status["memory"] == {
        "total_gb": 100.0,
        "used_gb": 10.0,
        "available_gb": 90.0,
        "usage_percent": 10.0,
        "threshold_percent": 90,
    }
    assert (status["in_flight_requests"], status["max_concurrent_requests"]) == (1, 2)
    assert status["version"] == "0.1.0"
    sim.unload_model("a")
    memory = requests.get(f"{sim.url}/admin/memory", timeout=3).json()
    assert memory == {
        "total_unified_memory_gb": 100.0,
        "used_gb": 5.5,
        "available_gb": 94.5,
        "threshold_percent": 90,
        "models": {"b": {"memory_gb": 3.5, "loaded": True}},
    }
    sim.set_models({"c": 1.0})
    assert requests.get(f"{sim.url}/admin/status", timeout=3).json()["models"] == ["c"]


def test_in_flight_is_at_most_the_limit_and_the_queue_is_its_own_count(h: Harness) -> None:
    """LMX counts a request in flight only once it holds a slot; the waiting ones are
    `lmx_queued_requests`."""
    sim = h.sim(max_concurrent_requests=2)
    with pytest.raises(ValueError, match="limit 2"):
        sim.set_in_flight(3)
    sim.set_in_flight(2, queued=5)
    text = requests.get(f"{sim.url}/admin/metrics", timeout=3).text
    for line in ("lmx_in_flight_requests 2", "lmx_concurrent_limit 2", "lmx_queued_requests 5"):
        assert line in text.splitlines()
    status = requests.get(f"{sim.url}/admin/status", timeout=3).json()
    assert (status["in_flight_requests"], status["max_concurrent_requests"]) == (2, 2)
