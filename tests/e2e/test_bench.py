"""The benchmark harness (bench/): a smoke run of its tiny mode, checked for shape only
(timings are never assertions), and the two behaviours issue 9 pins functionally: an event
on a close-delimited stream arrives while the connection stays open, and a burst at LMX's
top rate through the real 100-event queue is counted whole with no zombie subscription."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import probes
from bench.agents import Agent
from bench.run import main
from lmx_simulator import LmxSimulator
from opta_exporter.config import Config
from opta_exporter.daemon import Exporter
from tests.conftest import WAIT, is_open, scrape, value, wait_for

MakeExporter = Callable[..., Exporter]
MakeSim = Callable[..., LmxSimulator]
BURST = 1000


def _positive(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and x > 0


def _stats(s: Any) -> None:
    assert set(s) == {"median", "min", "max", "runs"}
    assert s["runs"]
    assert all(_positive(v) for v in s["runs"])
    assert s["min"] <= s["median"] <= s["max"]


def test_tiny_run_produces_table_and_json_of_the_documented_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert main(["--tiny", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| consumer | events/s | CPU us/event | x baseline |" in printed
    assert "| target | this run | met |" in printed

    r = json.loads(out.read_text())
    assert r["mode"] == "tiny"
    assert _positive(r["machine"]["nproc"])
    assert r["machine"]["python"]
    ing = r["ingestion"]
    assert _positive(ing["events"])
    assert _positive(ing["mean_event_bytes"])
    for name in ("exporter", "exporter_scraped", "baseline", "transport"):
        for key in ("events_per_s", "cpu_us_per_event", "ratio_to_baseline"):
            _stats(ing[name][key])
    _stats(ing["exporter"]["stream_thread_cpu_us_per_event"])
    _stats(r["contention"]["ratio"])
    for framing in ("chunked", "close_delimited"):
        _stats(r["prompt_delivery"][framing]["state_ms"])
        _stats(r["prompt_delivery"][framing]["metrics_ms"])
        _stats(r["prompt_delivery"][framing]["in_window_metrics_ms"])
        _stats(r["prompt_delivery"][framing]["in_window_unscraped_state_ms"])
    assert [(row["format"], row["models_offered"]) for row in r["scrape"]] == [
        ("openmetrics", 3),
        ("text", 3),
        ("openmetrics", 100),
        ("text", 100),
    ]
    for row in r["scrape"]:
        assert all(_positive(row[k]) for k in ("median_ms", "p99_ms", "bytes", "models_kept"))
    relay = r["relay"]
    assert relay["models"] == 100
    assert _positive(relay["lines"])
    _stats(relay["read_ms"])
    _stats(relay["write_ms"])
    assert _positive(relay["cpu_percent"])
    cost = r["cost"]
    for window in ("active", "idle"):
        assert _positive(cost[window]["seconds"])
        assert _positive(cost[window]["cpu_percent"])
        assert "stream" in cost[window]["thread_cpu_percent"]
    assert cost["active"]["events"] > 0
    floor = cost["floor"]
    assert floor["unpaced"]["window_s"] == 0.0
    assert floor["paced"]["window_s"] == Config().batch_window
    for pace in ("unpaced", "paced"):
        assert floor[pace]["events"] == cost["active"]["events"]
        assert _positive(floor[pace]["cpu_percent"])
    rss = cost["rss"]
    assert all(_positive(rss[k]) for k in ("events", "start_mb", "end_mb", "peak_mb"))
    assert len(rss["after_each_block_mb"]) == r["sizes"]["memory_blocks"]
    bursts = r["bursts"]
    assert _positive(bursts["published"])
    assert bursts["lost"] == bursts["zombies"] == 0
    _stats(bursts["burst_rate"])
    _stats(r["recovery"]["seconds"])
    assert r["targets"]
    assert all(isinstance(t["target"], str) and isinstance(t["met"], bool) for t in r["targets"])


def test_close_delimited_event_arrives_while_the_connection_stays_open(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    """A reader that waits for a full buffer (iter_content on a body without chunks)
    would only hand this event over when LMX closed the stream: read1 hands it over now."""
    sim = make_sim(chunked=False)
    exporter = make_exporter(sim)
    wait_for(exporter, is_open)
    assert sim.wait_for_subscribers(1, WAIT)
    for n in (1, 2):
        sim.publish("config_reloaded", {"routing_aliases": 0, "memory_threshold": 90})
        wait_for(exporter, lambda s, h: s.config_reloads == n)  # noqa: B023
        # Still the first connection, still subscribed, no reconnect of any kind.
        assert (sim.connections_total, sim.subscriber_count()) == (1, 1)
        assert exporter.store.view().health.connection_state == "open"
    samples = scrape(exporter)
    assert value(samples, "opta_lmx_config_reloads_total") == 2.0
    assert value(samples, "opta_exporter_reconnects_total", reason="eof") == 0.0


@pytest.fixture
def lmx_process() -> Iterator[Agent[LmxSimulator]]:
    """The simulator in its own process, as LMX is: the burst's pacing and LMX's queue
    draining then never wait on the exporter's GIL."""
    with Agent("lmx", probes.make_sim, probes.stop_sim) as agent:
        yield agent


def test_burst_at_lmx_top_rate_is_counted_whole_with_no_zombie(
    lmx_process: Agent[LmxSimulator],
) -> None:
    config = Config(
        lmx_url=lmx_process.call(probes.sim_url), listen_host="127.0.0.1", listen_port=0
    )
    exporter = Exporter(config)
    exporter.start()
    try:
        wait_for(exporter, is_open)
        assert lmx_process.call(probes.wait_subscribers, 1)
        lmx_process.call(probes.publish_paced, BURST, 8000.0, 6)  # LMX's top: ~6-9k/s
        wait_for(exporter, lambda s, h: sum(s.events.values()) == BURST)
        published, live, zombies = lmx_process.call(probes.sim_counts)
        assert (published, live, zombies) == (BURST, 1, 0)
        samples = scrape(exporter)
    finally:
        exporter.stop()
    counted = sum(
        v
        for (name, labels), v in samples.items()
        if name == "opta_lmx_events_total" and ("event", "heartbeat") not in labels
    )
    assert counted == BURST
    assert value(samples, "opta_exporter_event_errors_total", reason="bad_field") == 0.0
