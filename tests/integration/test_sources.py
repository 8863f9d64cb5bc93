"""The polled sources and LMX's memory crisis, against the simulator as LMX is: load
shedding begins and ends, a model loaded before the exporter started, jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from lmx_simulator import LmxSimulator
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter
from tests.conftest import is_open, scrape, value, wait_for

MakeExporter = Callable[..., Exporter]
MakeSim = Callable[..., LmxSimulator]
KEY = "sources-admin-key"
# every read several times a second: a test waits for reads, never for the clock
FAST = {
    "snapshot_interval": 0.2,
    "relay_interval": 0.1,
    "health_interval": 0.1,
    "models_interval": 0.1,
    "diagnostics_interval": 0.1,
    "jobs_interval": 0.1,
    "jobs_busy_interval": 0.05,
}


def read_since(exporter: Exporter, source: str) -> Callable[[LmxState, ExporterHealth], bool]:
    """A predicate: `source` has succeeded after this moment."""
    mark = exporter.store.view().health.sources[source].last_success_mono or 0.0

    def done(state: LmxState, health: ExporterHealth) -> bool:
        last = health.sources[source].last_success_mono
        return last is not None and last > mark

    return done


def stale(exporter: Exporter, source: str) -> Callable[[LmxState, ExporterHealth], bool]:
    clock = exporter.store.clock
    return lambda state, health: not health.sources[source].fresh(clock.monotonic())


def test_load_shedding_begins_and_ends(
    make_sim: MakeSim, make_exporter: MakeExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = make_sim(admin_key=KEY)
    sim.load_model("mlx-community/Qwen3-8B-4bit")
    exporter = make_exporter(sim, admin_key=KEY, **FAST)
    wait_for(exporter, is_open)
    wait_for(exporter, read_since(exporter, "health"))
    calm = scrape(exporter)
    assert value(calm, "opta_lmx_load_shedding") == 0
    assert value(calm, "opta_lmx_memory_used_bytes") is not None

    sim.set_memory_usage(97.0)  # LMX's monitor crosses its 95 % shedding threshold
    wait_for(exporter, lambda state, health: state.shedding)
    wait_for(exporter, stale(exporter, "memory"))  # two snapshot intervals of 503s
    wait_for(exporter, read_since(exporter, "health"))
    shed = scrape(exporter)
    assert value(shed, "opta_lmx_load_shedding") == 1
    assert value(shed, "opta_lmx_memory_usage_ratio") == pytest.approx(0.97)
    assert value(shed, "opta_lmx_health_status", status="degraded") == 1
    for frozen in ("opta_lmx_memory_used_bytes", "opta_lmx_requests_in_flight"):
        assert value(shed, frozen) is None, f"{frozen} is shown from before the crisis"
    assert value(shed, "opta_exporter_source_up", source="status") == 0
    assert value(shed, "opta_exporter_source_up", source="health") == 1
    # the stream opened before the crisis keeps flowing, and counts as up
    assert value(shed, "opta_lmx_up") == 1
    sim.load_model("gguf/during-the-crisis.gguf", fmt="gguf")
    wait_for(exporter, lambda state, health: "gguf/during-the-crisis.gguf" in state.loaded)

    sim.set_memory_usage(40.0)
    wait_for(exporter, lambda state, health: not state.shedding)
    wait_for(exporter, read_since(exporter, "memory"))
    wait_for(exporter, lambda s, h: s.health is not None and s.health.status == "ok")
    back = scrape(exporter)
    assert value(back, "opta_lmx_load_shedding") == 0
    assert value(back, "opta_lmx_memory_used_bytes") is not None
    assert value(back, "opta_lmx_health_status", status="ok") == 1
    said = [r.getMessage() for r in caplog.records if "shedding" in r.getMessage()]
    assert len(said) == 2, said  # one line as the spell begins, one as it ends
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_a_model_loaded_before_the_exporter_has_readiness_and_its_format(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim()
    sim.load_model("/models/a.gguf", fmt="gguf")
    sim.load_model("mlx-community/m", fmt="mlx")
    exporter = make_exporter(sim, **FAST)  # subscribes after the loads: no event for them
    expected = {"/models/a.gguf": "gguf", "mlx-community/m": "mlx"}
    wait_for(exporter, lambda s, h: s.loaded == expected and len(s.readiness) == 2)
    samples = scrape(exporter)
    for model, fmt in (("/models/a.gguf", "gguf"), ("mlx-community/m", "mlx")):
        assert value(samples, "opta_lmx_model_loaded", model=model, format=fmt) == 1
        assert value(samples, "opta_lmx_model_readiness", model=model, state="routable") == 1


def test_crash_loop_and_quarantine_are_seen(make_sim: MakeSim, make_exporter: MakeExporter) -> None:
    sim = make_sim()
    sim.load_model("m")
    exporter = make_exporter(sim, **FAST)
    wait_for(exporter, is_open)
    sim.crash_loop_model("m", crash_count=4)
    wait_for(exporter, lambda state, health: state.readiness.get("m") == "quarantined")
    wait_for(exporter, read_since(exporter, "diagnostics"))
    samples = scrape(exporter)
    assert value(samples, "opta_lmx_crash_loop") == 1
    assert value(samples, "opta_lmx_models_quarantined") == 1
    assert value(samples, "opta_lmx_model_crashes", model="m") == 4  # from the event
    assert value(samples, "opta_lmx_health_verdict", verdict="critical") == 1
    wait_for(exporter, read_since(exporter, "models"))  # /admin/models says crash_count 0
    assert value(scrape(exporter), "opta_lmx_model_crashes", model="m") == 4


def test_downloads_and_quantize_jobs_are_polled(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim()
    exporter = make_exporter(sim, **FAST)
    wait_for(exporter, is_open)
    download = sim.start_download("mlx-community/big", total_bytes=4000)
    sim.advance_download(download, 1000)
    job = sim.start_quantize("mlx-community/m")
    wait_for(exporter, lambda state, health: bool(state.downloads_running))
    wait_for(exporter, read_since(exporter, "quantize"))
    samples = scrape(exporter)
    repo = "mlx-community/big"
    assert value(samples, "opta_lmx_download_progress_ratio", repo=repo) == 0.25
    assert value(samples, "opta_lmx_download_bytes", repo=repo, kind="downloaded") == 1000
    assert value(samples, "opta_lmx_download_bytes", repo=repo, kind="total") == 4000
    assert value(samples, "opta_lmx_quantize_jobs_listed", status="running") == 1
    sim.finish_download(download)
    sim.finish_quantize(job)
    wait_for(exporter, lambda state, health: not state.downloads_running)
    wait_for(exporter, lambda state, health: state.quantize_jobs["completed"] == 1)
    wait_for(exporter, read_since(exporter, "quantize"))
    done = scrape(exporter)
    assert value(done, "opta_lmx_download_progress_ratio", repo=repo) is None
    assert value(done, "opta_lmx_downloads_total", outcome="completed") == 1
    assert value(done, "opta_lmx_quantize_jobs_listed", status="completed") == 1
    assert value(done, "opta_lmx_quantize_jobs_listed", status="running") == 0
