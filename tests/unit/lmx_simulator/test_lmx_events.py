"""The LMX stand-in against real sockets: whatever a test does to it (loads, unloads,
requests, quarantines, host conditions, downloads, quantize jobs), the default simulator
streams only event types a running LMX sends."""

from __future__ import annotations

from lmx_simulator import LmxSimulator
from tests.unit.lmx_simulator.harness import LMX_EVENT_TYPES, Harness, event

END = "test_end"  # the test's own marker, published after everything else


def exercise(sim: LmxSimulator) -> None:
    """Every simulator method that changes LMX's state, none of them `publish`."""
    sim.load_model("a", fmt="mlx", memory_gb=4.0)
    sim.load_model("b.gguf", fmt="gguf", memory_gb=2.0)
    sim.record_request("a", latency_sec=0.4, completion_tokens=30, stream=True, client_id="c")
    sim.record_request("b.gguf", error=True)
    sim.set_in_flight(3)
    sim.set_memory_usage(97.0)
    sim.set_shedding(True)
    sim.set_metal(False, cache_gb=1.0)
    sim.set_agent_runs(active=1, completed=2, failed=1)
    sim.quarantine_model("a", last_failure_reason="Metal OOM")
    sim.crash_loop_model("b.gguf")
    sim.unload_model("a", reason="lru")
    sim.set_models({"c": 1.0})
    done, failed = sim.start_download("org/x"), sim.start_download("org/y")
    sim.advance_download(done, 1024, files_completed=1)
    sim.finish_download(done)
    sim.fail_download(failed, "HTTP 404", error_code="repo_not_found")
    first, second, third = (sim.start_quantize(m) for m in ("c", "d", "e"))
    sim.finish_quantize(first)
    sim.fail_quantize(second, "out of memory")
    sim.cancel_quantize(third)
    sim.cancel_quantize(third)


def test_the_simulator_streams_only_what_lmx_sends(h: Harness) -> None:
    sim = h.sim(queue_size=1000)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    exercise(sim)
    sim.publish(END, {})
    names: set[str] = set()
    while (name := event(c.read_chunk())[0]) != END:
        names.add(name)
    assert names <= LMX_EVENT_TYPES
