"""The LMX stand-in against real sockets: load shedding (lmx_simulator/httpserver.py,
conditions.py) -- LMX's exact 503 before routing and the key check on every path but three,
new event subscriptions refused while an open stream carries on, the 95 % line."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from lmx_simulator import LmxSimulator
from tests.unit.lmx_simulator.harness import Harness, RawClient, event

KEY = "s3cret"
SHED = {
    "error": {
        "message": "Server under memory pressure",
        "type": "server_error",
        "code": "overloaded",
    }
}
SHED_RAW = json.dumps(SHED).encode()
SHED_PATHS = (
    "/admin/events",
    "/admin/events?admin_key=s3cret",
    "/admin/status",
    "/admin/memory",
    "/admin/metrics",
    "/admin/metrics/json",
    "/admin/models",
    "/admin/models/m/performance",
    "/admin/diagnostics",
    "/admin/models/downloads",
    "/admin/quantize",
    "/admin/helpers",
    "/v1/models",
    "/healthz/",
    "/nonexistent",
)


def next_event(c: RawClient) -> tuple[str, dict[str, Any]]:
    """The next event that is not a heartbeat (on a slow host the idle timer may fire first)."""
    for _ in range(20):
        name, data = event(c.read_chunk())
        if name != "heartbeat":
            return name, data
    raise AssertionError("nothing but heartbeats")


def shedding_sim(h: Harness) -> LmxSimulator:
    sim = h.sim(admin_key=KEY)
    sim.load_model("m", memory_gb=1.0, emit=False)
    sim.set_memory_usage(97.0)
    return sim


def assert_shed(r: requests.Response) -> None:
    assert r.status_code == 503
    assert r.headers["retry-after"] == "30"
    assert r.headers["content-type"] == "application/json"
    assert r.json() == SHED
    assert r.content == SHED_RAW


@pytest.mark.parametrize("key", [KEY, "wrong", None])
def test_every_path_but_three_gets_lmx_503_before_the_key_check(
    h: Harness, key: str | None
) -> None:
    sim = shedding_sim(h)
    headers = {"X-Admin-Key": key} if key is not None else {}
    for path in SHED_PATHS:
        assert_shed(requests.get(sim.url + path, headers=headers, timeout=3))
    posted = requests.post(
        f"{sim.url}/admin/models/unload", json={"model_id": "nope"}, headers=headers, timeout=3
    )
    assert_shed(posted)


def test_the_three_exempt_paths_answer(h: Harness) -> None:
    sim = shedding_sim(h)
    health = requests.get(f"{sim.url}/admin/health", headers={"X-Admin-Key": KEY}, timeout=3)
    assert health.status_code == 200
    assert (health.json()["status"], health.json()["memory_usage_percent"]) == ("degraded", 97.0)
    no_key = requests.get(f"{sim.url}/admin/health", timeout=3)
    assert (no_key.status_code, no_key.json()) == (403, {"detail": "Invalid or missing admin key"})
    assert requests.get(f"{sim.url}/healthz", timeout=3).status_code == 200
    ready = requests.get(f"{sim.url}/readyz?verbose=1", timeout=3)
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


def test_the_503_is_chunked_with_no_content_length_and_refuses_a_new_stream(h: Harness) -> None:
    sim = shedding_sim(h)
    c = h.client(sim, headers={"X-Admin-Key": KEY})
    assert c.status == 503
    assert (c.headers["content-type"], c.headers["retry-after"]) == ("application/json", "30")
    assert c.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in c.headers
    assert c.headers["x-request-id"]
    assert c.read_chunk() == SHED_RAW
    assert c.read_chunk() == b""
    assert sim.subscriber_count() == 0
    assert sim.connections_total == 0  # never reached the event bus


def test_a_stream_opened_before_shedding_keeps_its_events_and_heartbeats(h: Harness) -> None:
    sim = h.sim(admin_key=KEY, heartbeat_interval=0.3)
    c = h.client(sim, headers={"X-Admin-Key": KEY})
    assert sim.wait_for_subscribers(1)
    sim.set_memory_usage(97.0)
    assert_shed(requests.get(f"{sim.url}/admin/status", headers={"X-Admin-Key": KEY}, timeout=3))
    sim.publish("config_reloaded", {"log_level": "INFO"})
    assert next_event(c) == ("config_reloaded", {"log_level": "INFO"})
    assert event(c.read_chunk())[0] == "heartbeat"  # nothing else was published since
    sim.set_memory_usage(None)
    sim.publish("config_reloaded", {"log_level": "DEBUG"})
    assert next_event(c) == ("config_reloaded", {"log_level": "DEBUG"})


def test_shedding_starts_at_the_threshold_while_health_still_says_ok(h: Harness) -> None:
    sim = h.sim(admin_key=KEY)
    headers = {"X-Admin-Key": KEY}
    sim.set_memory_usage(94.9)
    assert requests.get(f"{sim.url}/admin/status", headers=headers, timeout=3).status_code == 200
    sim.set_memory_usage(95.0)
    assert_shed(requests.get(f"{sim.url}/admin/status", headers=headers, timeout=3))
    health = requests.get(f"{sim.url}/admin/health", headers=headers, timeout=3).json()
    assert (health["status"], health["memory_usage_percent"]) == ("ok", 95.0)
    lower = h.sim(load_shedding_percent=80.0)
    lower.set_memory_usage(85.0)
    assert_shed(requests.get(f"{lower.url}/admin/status", timeout=3))


def test_the_switch_forces_shedding_and_ending_it_restores_every_answer(h: Harness) -> None:
    sim = h.sim(admin_key=KEY)
    headers = {"X-Admin-Key": KEY}
    sim.set_shedding(True)
    assert_shed(requests.get(f"{sim.url}/admin/models", headers=headers, timeout=3))
    assert_shed(requests.get(f"{sim.url}/admin/status", headers={"X-Admin-Key": "no"}, timeout=3))
    assert h.client(sim, headers=headers).status == 503
    sim.set_shedding(None)
    assert requests.get(f"{sim.url}/admin/models", headers=headers, timeout=3).status_code == 200
    wrong = requests.get(f"{sim.url}/admin/status", headers={"X-Admin-Key": "no"}, timeout=3)
    assert wrong.status_code == 403
    assert requests.get(f"{sim.url}/nonexistent", timeout=3).status_code == 404
    assert h.client(sim, headers=headers).status == 200
    assert sim.wait_for_subscribers(1)
    sim.set_memory_usage(99.0)
    sim.set_shedding(False)  # forced off, whatever the memory says
    assert requests.get(f"{sim.url}/admin/status", headers=headers, timeout=3).status_code == 200
