"""Every family the exporter declares gets a sample from the simulator as LMX is.

The one rule of the product: a family no running LMX input can fill is not built. This
runs one LMX day through the simulator (which sends only what LMX sends) — loads,
requests, a failed canary, unloads, a crash loop, agent runs, downloads, quantize jobs,
a config reload, lost events, a dropped stream, load shedding — scrapes after each step,
and fails for any declared family that never had a sample, unless it is listed in
NO_SCENARIO with the reason no scenario can fill it.
"""

from __future__ import annotations

from collections.abc import Callable

from lmx_simulator import LmxSimulator
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter
from opta_exporter.metrics.specs import METRICS, MetricSpec
from opta_exporter.relay.families import RELAY_METRICS
from tests.conftest import WAIT, is_open, scrape
from tests.integration.test_sources import FAST, read_since

MakeExporter = Callable[..., Exporter]
MakeSim = Callable[..., LmxSimulator]

# Declared families that no scenario fills, each with its reason. Empty: every family
# the exporter declares has a source a running LMX provides.
NO_SCENARIO: dict[str, str] = {}


def wait_for(exporter: Exporter, predicate: Callable[[LmxState, ExporterHealth], bool]) -> None:
    """conftest's wait_for, saying on failure what the exporter had seen: a long scenario
    fails far from its cause otherwise."""
    if not exporter.store.wait_for(predicate, WAIT):
        view = exporter.store.view()
        state, health = view.state, view.health
        raise AssertionError(
            f"not reached: events {state.events}, reconnects {health.reconnects}, "
            f"drift {state.state_drift}, loaded {sorted(state.loaded)}"
        )


def sample_names(spec: MetricSpec) -> tuple[str, ...]:
    """The sample names that show the family has a sample."""
    return (f"{spec.name}_count",) if spec.kind == "histogram" else (spec.name,)


class Seen:
    """Family names that have had a sample in any scrape so far."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.names: set[str] = set()

    def scrape(self) -> None:
        self.names |= {name for name, _ in scrape(self.exporter)}

    def missing(self) -> list[str]:
        return [
            spec.name
            for spec in (*METRICS, *RELAY_METRICS)
            if not any(name in self.names for name in sample_names(spec))
        ]


def test_every_declared_family_has_a_sample_in_an_lmx_day(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim(heartbeat_interval=1.0)
    sim.load_model("/models/before.gguf", fmt="gguf")  # loaded before the exporter started
    exporter = make_exporter(sim, max_models=5, **FAST)
    wait_for(exporter, lambda s, h: is_open(s, h) and s.synced)
    seen = Seen(exporter)
    seen.scrape()
    # the check can fail: a calm LMX just after start leaves these empty
    assert {"opta_lmx_throughput_window_tokens_per_second", "opta_lmx_download_bytes"} <= set(
        seen.missing()
    )

    # loads (events, canaries, compatibility checks) and requests (relay, window)
    sim.load_model("mlx-community/Qwen3-8B-4bit", memory_gb=4.5)
    sim.record_request("mlx-community/Qwen3-8B-4bit", completion_tokens=120, client_id="app")
    wait_for(exporter, read_since(exporter, "relay"))
    sim.record_request("/models/before.gguf", completion_tokens=80, stream=True, error=True)
    wait_for(exporter, read_since(exporter, "relay"))
    wait_for(exporter, lambda s, h: len(s.throughput.window) >= 1)
    seen.scrape()

    # a failed canary, quarantine, a crash loop, agent runs, config reload
    sim.quarantine_model("mlx-community/Qwen3-8B-4bit", crash_count=2, reason="canary failed")
    sim.crash_loop_model("/models/before.gguf", crash_count=4)
    sim.set_agent_runs(active=1, completed=3, failed=1)
    sim.publish("config_reloaded", {"routing_aliases": 1, "memory_threshold": 85})
    wait_for(exporter, lambda s, h: s.config_reloads == 1 and bool(s.crashes))
    wait_for(exporter, read_since(exporter, "diagnostics"))
    seen.scrape()

    # downloads and quantize jobs: progress while running, outcomes at the end
    download = sim.start_download("mlx-community/big", total_bytes=4000)
    sim.advance_download(download, 1000)
    sim.finish_quantize(sim.start_quantize("mlx-community/Qwen3-8B-4bit"))
    sim.start_quantize("/models/before.gguf")
    wait_for(exporter, lambda s, h: bool(s.downloads_running) and bool(s.quantize_listed))
    wait_for(exporter, read_since(exporter, "downloads"))
    seen.scrape()
    sim.finish_download(download)
    wait_for(exporter, lambda s, h: s.downloads["completed"] == 1)
    seen.scrape()

    # unloads, a lost event (drift), a refused model id, bad input, a dropped stream
    sim.unload_model("mlx-community/Qwen3-8B-4bit", reason="ttl")
    sim.unload_model("/models/before.gguf", emit=False)  # its event is lost
    sim.load_model("m" * 300)  # over the 256-character cap: refused, counted
    sim.publish_raw(b"event: model_loaded\ndata: {not json\n\n")
    wait_for(exporter, lambda s, h: s.state_drift >= 1 and s.event_errors["malformed_json"] > 0)
    # drift makes the exporter subscribe again ("dropped"): let that settle first
    wait_for(exporter, lambda s, h: h.reconnects["dropped"] >= 1 and is_open(s, h))
    reconnects = sum(exporter.store.view().health.reconnects.values())
    sim.close_streams()
    wait_for(exporter, lambda s, h: sum(h.reconnects.values()) > reconnects and is_open(s, h))
    seen.scrape()

    # LMX's memory crisis: it sheds load, then recovers
    sim.set_memory_usage(97.0)
    wait_for(exporter, lambda s, h: s.shedding)
    seen.scrape()
    sim.set_memory_usage(40.0)
    wait_for(exporter, lambda s, h: not s.shedding)
    seen.scrape()

    missing = [name for name in seen.missing() if name not in NO_SCENARIO]
    assert missing == [], f"declared but never filled by LMX as it is: {missing}"
    assert all(name in seen.missing() for name in NO_SCENARIO), "a listed family now fills"
