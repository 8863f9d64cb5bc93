"""The LMX stand-in against real sockets: the host's condition (lmx_simulator/conditions.py)
-- a crash-looping model quarantined (its real crash count only in the event), LMX's crash
loop and the diagnostics verdict, agent runs."""

from __future__ import annotations

from typing import Any

import requests

from lmx_simulator import LmxSimulator
from tests.unit.lmx_simulator.harness import Harness, event


def body(sim: LmxSimulator, path: str) -> Any:
    r = requests.get(sim.url + path, timeout=3)
    assert r.status_code == 200
    return r.json()


def test_crash_loop_quarantines_and_only_the_event_carries_the_count(h: Harness) -> None:
    sim = h.sim()
    sim.load_model("good", memory_gb=1.0, emit=False)
    sim.load_model("bad", fmt="gguf", memory_gb=2.0, emit=False)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.crash_loop_model("bad", crash_count=4)
    name, data = event(c.read_chunk())
    assert name == "model_readiness_changed"
    assert {k: data[k] for k in ("model_id", "previous_state", "state", "crash_count")} == {
        "model_id": "bad",
        "previous_state": "routable",
        "state": "quarantined",
        "crash_count": 4,
    }
    assert isinstance(data["updated_at"], float)
    readiness = {m["id"]: m["readiness"] for m in body(sim, "/admin/models")["loaded"]}
    assert readiness == {
        "good": {"state": "routable", "reason": None, "crash_count": 0},
        "bad": {"state": "quarantined", "reason": "crash_loop", "crash_count": 0},
    }
    diagnostics = body(sim, "/admin/diagnostics")
    assert diagnostics["system"]["crash_loop_detected"] is True
    assert diagnostics["models"]["quarantined_count"] == 1
    assert {m["id"]: m["readiness"] for m in diagnostics["models"]["models"]} == {
        "good": "routable",
        "bad": "quarantined",
    }
    assert diagnostics["health_verdict"] == "critical"


def test_quarantine_outlives_the_unload_and_degrades_the_verdict(h: Harness) -> None:
    sim = h.sim()
    sim.load_model("flaky", memory_gb=1.0, emit=False)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.quarantine_model("flaky", crash_count=2, reason="canary failed", last_failure_reason="oom")
    assert event(c.read_chunk())[1]["last_failure_reason"] == "oom"
    sim.unload_model("flaky", emit=False)
    diagnostics = body(sim, "/admin/diagnostics")
    assert (diagnostics["models"]["loaded_count"], diagnostics["models"]["quarantined_count"]) == (
        0,
        1,
    )
    assert diagnostics["system"]["crash_loop_detected"] is False
    assert diagnostics["health_verdict"] == "degraded"
    sim.set_crash_loop(True)
    assert body(sim, "/admin/diagnostics")["health_verdict"] == "critical"


def test_verdict_critical_above_five_percent_errors(h: Harness) -> None:
    sim = h.sim()
    for i in range(20):
        sim.record_request("m", error=i == 0)
    assert body(sim, "/admin/diagnostics")["inference"]["error_rate_pct"] == 5.0
    assert body(sim, "/admin/diagnostics")["health_verdict"] == "healthy"
    sim.record_request("m", error=True)
    assert body(sim, "/admin/diagnostics")["health_verdict"] == "critical"


def test_agent_runs(h: Harness) -> None:
    sim = h.sim()
    assert body(sim, "/admin/diagnostics")["agents"] == {
        "active_runs": 0,
        "completed_runs": 0,
        "failed_runs": 0,
    }
    sim.set_agent_runs(active=2, completed=7, failed=1)
    assert body(sim, "/admin/diagnostics")["agents"] == {
        "active_runs": 2,
        "completed_runs": 7,
        "failed_runs": 1,
    }
