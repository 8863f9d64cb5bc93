"""LmxCollector on a private registry: every family from the first scrape, values after
events, health gauges on a fake clock, escaping, histograms and both exposition formats."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from opta_exporter import __version__
from opta_exporter.core.events import ERROR_REASONS
from opta_exporter.core.health import CONNECTION_STATES, ExporterHealth, SourceStatus
from opta_exporter.core.labels import FORMATS, READINESS_STATES
from opta_exporter.core.readings import Download, parse_diagnostics, parse_health, parse_quantize
from opta_exporter.core.state import GIB, LmxState, Snapshot
from opta_exporter.core.throughput import TokenCount
from opta_exporter.core.window import WINDOW_STATS
from opta_exporter.metrics.collector import LmxCollector
from opta_exporter.metrics.specs import METRICS
from opta_exporter.store import Store
from tests.fakes import FakeClock
from tests.helpers import FIXTURES, example_snapshot, promtool_check, read_sse

WALL = 1_718_000_000.0
M = "mlx-community/Qwen3-8B-4bit"
# the OpenMetrics functions carry no annotations: give them their documented types
om_generate = cast("Callable[[CollectorRegistry], bytes]", openmetrics.generate_latest)
om_parse = cast(
    "Callable[[str], Iterable[Metric]]", openmetrics_parser.text_string_to_metric_families
)
ODD_IDS = (
    '/m/we"ird\\x.gguf',
    'C:\\models\\"q"\\m.gguf',
    "line one\nline two",
    "🦙 llama-3 ✨",
    'caf\u00e9 {x="1"} # not a comment',
)


@dataclass
class Rig:
    clock: FakeClock
    store: Store
    registry: CollectorRegistry

    def ingest(self, name: str, data: object) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        error = self.store.ingest(name, text)
        assert error is None, error

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def text(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


def make_rig(state: LmxState | None = None) -> Rig:
    clock = FakeClock(WALL, mono=1000.0)
    store = Store(state or LmxState(), ExporterHealth(), clock=clock)
    registry = CollectorRegistry()
    registry.register(LmxCollector(store))
    return Rig(clock, store, registry)


@pytest.fixture
def rig() -> Rig:
    return make_rig()


LOAD_UNLOAD = read_sse(FIXTURES / "lmx_load_unload.sse")


def feed_everything(rig: Rig) -> None:
    """At least one sample in every family, odd model ids included."""
    for name, data in LOAD_UNLOAD[:-1]:
        rig.ingest(name, data)
    for i, model in enumerate(ODD_IDS):
        rig.ingest(
            "model_loaded",
            {"model_id": model, "format": "gguf", "memory_gb": 1.5 + i, "duration_sec": 3},
        )
        rig.ingest(
            "model_readiness_changed", {"model_id": model, "state": "routable", "crash_count": i}
        )
        rig.ingest("quantize_progress", {"model_id": model, "status": "quantizing", "percent": 0})
    rig.ingest("model_canary_failed", {"model_id": M, "duration_sec": 9.5, "error": "boom"})
    rig.ingest("model_unloaded", {"model_id": "gone", "reason": "lru"})
    rig.ingest("download_completed", {"repo_id": "r", "duration_sec": 42})
    rig.ingest("quantize_progress", {"model_id": "q", "status": "failed: out of memory"})
    rig.ingest("config_reloaded", {"memory_threshold": 90})
    rig.ingest("heartbeat", {"timestamp": WALL})
    # two relay reads of LMX's completion-token counter: one rate in the window
    rig.store.count_tokens(TokenCount(rig.clock.mono - 15.0, WALL - 15.0, 1000.0, 85.0))
    rig.store.count_tokens(TokenCount(rig.clock.mono, WALL, 1300.0, 100.0))
    assert rig.store.ingest("message", "{broken") is not None
    rig.store.reconcile(
        example_snapshot({M: 4.62, **{m: 1.0 for m in ODD_IDS}}, uptime=100.0),
        rig.store.seq(),
    )
    rig.store.set_connection("backoff", 2.0, "eof")
    rig.store.set_connection("open")
    rig.ingest("model_loaded", {"model_id": "x" * 300})  # over the label length limit
    rig.store.health.sources["health"] = SourceStatus(15.0)
    rig.store.source_read("health", True)
    rig.store.set_health(
        parse_health(
            {
                "status": "degraded",
                "memory_usage_percent": 96.5,
                "metal": {"active_memory_gb": 9.5, "peak_memory_gb": 12.0, "cache_memory_gb": 1},
            }
        )
    )
    rig.store.set_shedding(True)
    rig.store.thread("snapshots").running(True)
    rig.store.thread("relay").failed(RecursionError("maximum recursion depth exceeded"))
    rig.store.set_downloads(tuple(Download(m, 0.25, 1e9, 4e9) for m in ODD_IDS))
    rig.store.set_quantize(parse_quantize({"jobs": [{"status": "queued"}, {"status": "odd"}]}))
    rig.store.set_diagnostics(
        parse_diagnostics(
            {
                "system": {"crash_loop_detected": True},
                "models": {
                    "quarantined_count": 1,
                    "models": [{"id": ODD_IDS[0], "backend_type": "mlx"}],
                },
                "agents": {"active_runs": 1, "completed_runs": 4, "failed_runs": 1},
                "health_verdict": "critical",
            },
            FORMATS,
        )
    )


def type_lines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))


def help_names(text: str) -> set[str]:
    return set(re.findall(r"^# HELP (\S+) ", text, flags=re.MULTILINE))


def exposed_name(text_names: set[str] | dict[str, str], name: str, kind: str) -> str:
    """client_python prints a counter's TYPE with or without `_total` by version."""
    if kind == "counter" and name not in text_names:
        return name.removesuffix("_total")
    return name


# -- every family from the first scrape -------------------------------------------------
def test_first_scrape_exposes_every_family(rig: Rig) -> None:
    text = rig.text()
    types, helps = type_lines(text), help_names(text)
    assert len(types) == len(METRICS)
    for spec in METRICS:
        name = exposed_name(types, spec.name, spec.kind)
        assert types.get(name) == spec.kind, spec.name
        assert exposed_name(helps, spec.name, spec.kind) in helps, spec.name


def test_describe_matches_collect(rig: Rig) -> None:
    collector = LmxCollector(rig.store)
    described = [(m.name, m.type) for m in collector.describe()]
    collected = [(m.name, m.type) for m in collector.collect()]
    assert described == collected


def test_idle_values_on_the_first_scrape(rig: Rig) -> None:
    assert rig.value("opta_lmx_up") == 0.0
    assert rig.value("opta_exporter_connection_state", state="connecting") == 1.0
    assert rig.value("opta_lmx_throughput_window_samples") == 0.0
    for stat in WINDOW_STATS:
        assert rig.value("opta_lmx_throughput_window_tokens_per_second", stat=stat) is None
    assert rig.value("opta_lmx_memory_total_bytes") is None
    assert rig.value("opta_exporter_last_event_timestamp_seconds") is None
    assert rig.value("opta_exporter_state_drift_total") == 0.0
    assert (
        rig.value(
            "opta_exporter_build_info",
            version=__version__,
            python_version=platform.python_version(),
        )
        == 1.0
    )


# -- opta_lmx_up and the connection state --------------------------------------------------
@pytest.mark.parametrize(
    ("state", "elapsed", "up"),
    [
        ("open", 0.0, 1.0),
        ("open", 30.0, 1.0),
        ("open", 45.0, 1.0),  # exactly the stale timeout: still within it
        ("open", 45.5, 0.0),
        ("open", 600.0, 0.0),
        ("connecting", 0.0, 0.0),
        ("backoff", 0.0, 0.0),
        ("auth_failed", 0.0, 0.0),
        ("stopped", 0.0, 0.0),
    ],
)
def test_up(rig: Rig, state: str, elapsed: float, up: float) -> None:
    rig.store.set_connection(state)
    rig.clock.mono += elapsed
    assert rig.value("opta_lmx_up") == up


def test_up_stale_timer_starts_at_the_response_and_restarts_on_events(rig: Rig) -> None:
    rig.store.set_connection("open")  # LMX sends no byte yet: open all the same
    assert rig.value("opta_lmx_up") == 1.0
    rig.clock.mono += 46.0
    assert rig.value("opta_lmx_up") == 0.0
    rig.ingest("heartbeat", {"timestamp": WALL})
    assert rig.value("opta_lmx_up") == 1.0
    rig.clock.mono += 40.0
    rig.clock.wall += 40.0
    rig.ingest("model_canary_started", {"model_id": M, "backend": "mlx-lm"})
    rig.clock.mono += 40.0
    assert rig.value("opta_lmx_up") == 1.0
    assert rig.value("opta_exporter_last_event_timestamp_seconds") == WALL + 40.0


@pytest.mark.parametrize("current", CONNECTION_STATES)
def test_connection_state_is_one_hot(rig: Rig, current: str) -> None:
    rig.store.set_connection(current)
    values = {s: rig.value("opta_exporter_connection_state", state=s) for s in CONNECTION_STATES}
    assert values == {s: 1.0 if s == current else 0.0 for s in CONNECTION_STATES}
    assert set(CONNECTION_STATES) == {"connecting", "open", "backoff", "auth_failed", "stopped"}


def test_backoff_and_reconnects(rig: Rig) -> None:
    rig.store.set_connection("backoff", 4.0, "stale")
    rig.store.set_connection("backoff", 8.0, "stale")
    assert rig.value("opta_exporter_backoff_seconds") == 8.0
    assert rig.value("opta_exporter_reconnects_total", reason="stale") == 2.0
    assert rig.value("opta_exporter_reconnects_total", reason="eof") == 0.0
    rig.store.set_connection("open")
    assert rig.value("opta_exporter_backoff_seconds") == 0.0


# -- values after events -----------------------------------------------------------------
def test_values_after_the_load_sequence(rig: Rig) -> None:
    for name, data in LOAD_UNLOAD[:-1]:
        assert rig.store.ingest(name, data) is None
    assert rig.value("opta_lmx_model_loaded", model=M, format="mlx") == 1.0
    assert rig.value("opta_lmx_model_crashes", model=M) == 0.0
    assert rig.value("opta_lmx_model_loads_total", model=M, format="mlx") == 1.0
    assert rig.value("opta_lmx_model_canaries_total", outcome="passed") == 1.0
    assert (
        rig.value("opta_lmx_model_compatibility_checks_total", backend="mlx", outcome="pass") == 1.0
    )
    assert rig.value("opta_lmx_events_total", event="model_readiness_changed") == 4.0
    assert rig.value("opta_lmx_model_load_duration_seconds_count", format="mlx") == 1.0
    assert rig.value("opta_lmx_model_load_duration_seconds_sum", format="mlx") == 2.41
    assert rig.value("opta_exporter_last_event_timestamp_seconds") == WALL
    for reason in ERROR_REASONS:
        assert rig.value("opta_exporter_event_errors_total", reason=reason) == 0.0


def test_readiness_is_one_hot(rig: Rig) -> None:
    seen = []
    for name, data in LOAD_UNLOAD[:-1]:
        rig.store.ingest(name, data)
        values = {
            s: rig.value("opta_lmx_model_readiness", model=M, state=s) for s in READINESS_STATES
        }
        current = [s for s, v in values.items() if v == 1.0]
        assert len(current) == 1
        assert [v for v in values.values() if v != 1.0] == [0.0] * (len(READINESS_STATES) - 1)
        seen.append(current[0])
    assert seen == [
        "admitted", "loading", "canary_pending", "canary_pending", "canary_pending",
        "routable", "routable", "routable",
    ]  # fmt: skip


def test_unloaded_models_series_disappear(rig: Rig) -> None:
    for name, data in LOAD_UNLOAD[:-1]:
        rig.store.ingest(name, data)
    rig.ingest("model_loaded", {"model_id": M, "format": "mlx", "memory_gb": 4.62})
    assert rig.value("opta_lmx_model_memory_bytes", model=M) == 4.62 * GIB
    name, data = LOAD_UNLOAD[-1]
    rig.ingest(name, data)
    assert rig.value("opta_lmx_model_loaded", model=M, format="mlx") is None
    assert rig.value("opta_lmx_model_memory_bytes", model=M) is None
    assert rig.value("opta_lmx_model_crashes", model=M) is None
    for state in READINESS_STATES:
        assert rig.value("opta_lmx_model_readiness", model=M, state=state) is None
    assert f'model="{M}"' not in "".join(
        line for line in rig.text().splitlines() if line.startswith("opta_lmx_model_readiness")
    )
    assert rig.value("opta_lmx_model_loads_total", model=M, format="mlx") == 2.0  # counters stay
    assert rig.value("opta_lmx_model_unloads_total", reason="manual") == 1.0


def test_snapshot_gauges(rig: Rig) -> None:
    drift = rig.store.reconcile(
        example_snapshot({M: 4.62}),
        rig.store.seq(),
    )
    assert drift == 0
    assert rig.value("opta_lmx_info", version="0.1.0") == 1.0
    assert rig.value("opta_lmx_start_time_seconds") == WALL - 5231.4
    assert rig.value("opta_lmx_memory_total_bytes") == 512.0 * GIB
    assert rig.value("opta_lmx_memory_used_bytes") == 61.2 * GIB
    assert rig.value("opta_lmx_memory_available_bytes") == 450.8 * GIB
    assert rig.value("opta_lmx_memory_threshold_ratio") == 0.9
    assert rig.value("opta_lmx_requests_in_flight") == 1.0
    assert rig.value("opta_lmx_requests_max_concurrent") == 4.0
    assert rig.value("opta_lmx_model_memory_bytes", model=M) == 4.62 * GIB
    assert rig.value("opta_exporter_resyncs_total", outcome="success") == 1.0
    rig.store.resync_failed()
    assert rig.value("opta_exporter_resyncs_total", outcome="failure") == 1.0
    assert rig.store.reconcile(Snapshot(models={}), rig.store.seq()) == 1
    assert rig.value("opta_exporter_state_drift_total") == 1.0


def read_tokens(rig: Rig, tokens: float, uptime: float | None = None) -> None:
    """One relay read of LMX's lmx_completion_tokens_total, at the rig's clock."""
    rig.store.count_tokens(TokenCount(rig.clock.mono, rig.clock.wall, tokens, uptime))


def window(rig: Rig) -> tuple[float | None, dict[str, float | None]]:
    """opta_lmx_throughput_window_samples and each window statistic, as scraped."""
    return rig.value("opta_lmx_throughput_window_samples"), {
        stat: rig.value("opta_lmx_throughput_window_tokens_per_second", stat=stat)
        for stat in WINDOW_STATS
    }


def test_throughput_gauges(rig: Rig) -> None:
    total = 5000.0
    read_tokens(rig, total)  # the first read: a counter, no rate yet
    assert window(rig) == (0.0, dict.fromkeys(WINDOW_STATS))
    for tps in (10.0, 40.0, 20.0, 30.0):  # reads 15 s apart: Δtokens = 15 * tps
        rig.clock.advance(15.0)
        total += 15.0 * tps
        read_tokens(rig, total)
    samples, stats = window(rig)
    assert samples == 4.0
    # sorted 10,20,30,40: p50 at 1.5 -> 25, p95 at 2.85 -> 38.5; latest is the last read's
    assert stats == {
        "mean": 25.0,
        "p50": 25.0,
        "p95": pytest.approx(38.5),
        "max": 40.0,
        "min": 10.0,
        "latest": 30.0,
    }


def test_a_restart_between_two_reads_adds_no_sample(rig: Rig) -> None:
    read_tokens(rig, 5000.0, uptime=600.0)
    rig.clock.advance(15.0)
    read_tokens(rig, 5300.0, uptime=615.0)  # 20 tokens/s
    rig.clock.advance(15.0)
    read_tokens(rig, 150.0, uptime=10.0)  # LMX restarted: its counter began again
    rig.clock.advance(15.0)
    read_tokens(rig, 300.0, uptime=25.0)  # 10 tokens/s from the new start
    samples, stats = window(rig)
    assert samples == 2.0
    assert (stats["min"], stats["max"], stats["latest"]) == (10.0, 20.0, 10.0)


def relay_rig(window_duration: float = 300.0) -> Rig:
    """A rig whose exporter reads the relay every 15 s: its figures judged fresh or stale."""
    rig = make_rig(LmxState(window_duration=window_duration))
    rig.store.health.sources["relay"] = SourceStatus(15.0)
    return rig


def relay_read(rig: Rig, tokens: float | None) -> None:
    """A good relay read, with LMX's completion-token counter or (None) without it."""
    rig.store.source_read("relay", True)
    if tokens is not None:
        read_tokens(rig, tokens)


def test_the_window_is_shown_only_while_the_relay_is_fresh() -> None:
    """Its samples are rates from relay reads: once those fail for two intervals, the
    statistics go and no sample counts, as for any polled figure."""
    rig = relay_rig()
    relay_read(rig, 1000.0)
    rig.clock.advance(15.0)
    relay_read(rig, 1600.0)  # 40 tokens/s
    rig.clock.advance(15.0)
    relay_read(rig, 1900.0)  # 20 tokens/s
    samples, stats = window(rig)
    assert samples == 2.0
    assert stats == {
        "mean": 30.0,
        "p50": 30.0,
        "p95": pytest.approx(39.0),
        "max": 40.0,
        "min": 20.0,
        "latest": 20.0,
    }

    rig.clock.advance(30.0)  # two intervals since the last good read: still fresh
    rig.store.source_read("relay", False)
    assert window(rig)[0] == 2.0
    rig.clock.advance(1.0)  # past two intervals: stale, and a count of 0 would be a lie
    assert window(rig) == (None, dict.fromkeys(WINDOW_STATS))
    assert rig.value("opta_exporter_source_up", source="relay") == 0.0

    relay_read(rig, None)  # the relay works again: the samples still in the span are back
    samples, stats = window(rig)
    assert samples == 2.0
    assert stats["latest"] == 20.0


def test_samples_older_than_the_window_leave_the_scrape() -> None:
    """The window is a span of time: with fresh relay reads that bring no new rate (a read
    without the counter), an old sample still leaves once it is older than the span."""
    rig = relay_rig(window_duration=60.0)
    relay_read(rig, 0.0)
    rig.clock.advance(15.0)
    relay_read(rig, 150.0)  # 10 tokens/s, at WALL + 15
    for _ in range(4):  # WALL + 75: the sample is exactly 60 s old, still inside
        rig.clock.advance(15.0)
        relay_read(rig, None)
    assert window(rig)[0] == 1.0
    assert window(rig)[1]["latest"] == 10.0
    rig.clock.advance(1.0)
    relay_read(rig, None)
    assert window(rig) == (0.0, dict.fromkeys(WINDOW_STATS))


def test_series_dropped() -> None:
    rig = make_rig(LmxState(max_models=1))
    rig.ingest("model_loaded", {"model_id": "a"})
    rig.ingest("model_loaded", {"model_id": "b"})
    rig.ingest("model_loaded", {"model_id": "c" * 300})
    assert rig.value("opta_lmx_model_loaded", model="a", format="unknown") == 1.0
    assert rig.value("opta_lmx_model_loaded", model="b", format="unknown") is None
    assert rig.value("opta_exporter_series_dropped_total", metric="opta_lmx_model_loaded") == 2.0
    assert (
        rig.value("opta_exporter_series_dropped_total", metric="opta_lmx_model_loads_total") == 2.0
    )


# -- histograms --------------------------------------------------------------------------
def test_histogram_buckets_are_cumulative(rig: Rig) -> None:
    for i, seconds in enumerate((0.5, 2.0, 1000.0, 2.5)):
        rig.ingest("model_loaded", {"model_id": f"m{i}", "format": "mlx", "duration_sec": seconds})
    name = "opta_lmx_model_load_duration_seconds"
    assert rig.value(f"{name}_bucket", format="mlx", le="0.5") == 1.0  # le is inclusive
    assert rig.value(f"{name}_bucket", format="mlx", le="1.0") == 1.0
    assert rig.value(f"{name}_bucket", format="mlx", le="2.5") == 3.0
    assert rig.value(f"{name}_bucket", format="mlx", le="300.0") == 3.0
    assert rig.value(f"{name}_bucket", format="mlx", le="+Inf") == 4.0  # beyond every bound
    assert rig.value(f"{name}_count", format="mlx") == 4.0
    assert rig.value(f"{name}_sum", format="mlx") == pytest.approx(1005.0)
    family = next(f for f in text_string_to_metric_families(rig.text()) if f.name == name)
    buckets = [
        (float(s.labels["le"]), s.value) for s in family.samples if s.name == f"{name}_bucket"
    ]
    assert buckets == sorted(buckets)  # bounds ascending ...
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)  # ... and counts never fall
    assert buckets[-1] == (float("inf"), 4.0)


def test_every_histogram_has_inf_equal_to_count(rig: Rig) -> None:
    feed_everything(rig)
    histograms = [spec.name for spec in METRICS if spec.kind == "histogram"]
    for family in text_string_to_metric_families(rig.text()):
        if family.name not in histograms:
            continue
        by_labels: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            key = "inf" if s.labels.get("le") == "+Inf" else s.name.removeprefix(family.name)
            if key == "_bucket":
                continue
            by_labels.setdefault(labels, {})[key] = s.value
        assert by_labels, family.name
        for series in by_labels.values():
            assert series["inf"] == series["_count"]
            assert "_sum" in series


# -- escaping and parsing ----------------------------------------------------------------
def test_odd_label_values_round_trip(rig: Rig) -> None:
    for model in ODD_IDS:
        rig.ingest("model_loaded", {"model_id": model, "format": "gguf", "memory_gb": 2})
    models = {
        s.labels["model"]
        for family in text_string_to_metric_families(rig.text())
        if family.name == "opta_lmx_model_loaded"
        for s in family.samples
    }
    assert models == set(ODD_IDS)
    for model in ODD_IDS:
        assert rig.value("opta_lmx_model_loaded", model=model, format="gguf") == 1.0
    # a raw newline inside a label value would split the sample line
    for line in rig.text().splitlines():
        assert line.startswith("#") or re.match(r"^[a-z_]+(\{.*\})? \S+$", line), line


def test_full_scrape_parses(rig: Rig) -> None:
    feed_everything(rig)
    families = {f.name: f for f in text_string_to_metric_families(rig.text())}
    assert len(families) == len(METRICS)
    for spec in METRICS:
        family = families[spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name]
        assert family.samples, f"{spec.name} has no sample after feed_everything"


def test_promtool_accepts_the_scrape(rig: Rig) -> None:
    empty = make_rig().text()
    feed_everything(rig)
    for text in (empty, rig.text()):
        promtool_check(text)


def test_openmetrics_exposition_parses(rig: Rig) -> None:
    feed_everything(rig)
    text = om_generate(rig.registry).decode("utf-8")
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in om_parse(text)}
    assert len(families) == len(METRICS)
    models = {s.labels["model"] for s in families["opta_lmx_model_loaded"].samples}
    assert set(ODD_IDS) <= models
    empty = om_generate(make_rig().registry).decode("utf-8")
    assert len(list(om_parse(empty))) == len(METRICS)


def test_a_polled_figure_goes_once_its_source_failed_two_intervals() -> None:
    """Frozen is worse than absent: memory, status and health figures vanish when their
    source's last success is older than two of its intervals; events' figures stay."""
    sources = {name: SourceStatus(60.0) for name in ("status", "memory")}
    sources["health"] = SourceStatus(15.0)
    clock = FakeClock(WALL, mono=1000.0)
    store = Store(LmxState(), ExporterHealth(sources=sources), clock=clock)
    registry = CollectorRegistry()
    registry.register(LmxCollector(store))
    got = registry.get_sample_value
    store.reconcile(example_snapshot({M: 4.62}), store.seq())
    for name in ("status", "memory", "health"):
        store.source_read(name, True)
    store.set_health(parse_health({"status": "ok", "memory_usage_percent": 50}))
    assert got("opta_lmx_memory_used_bytes") is not None
    assert got("opta_lmx_requests_in_flight") is not None
    assert got("opta_lmx_memory_usage_ratio") == 0.5
    assert got("opta_lmx_health_status", {"status": "ok"}) == 1
    assert got("opta_exporter_source_up", {"source": "memory"}) == 1
    assert got("opta_exporter_source_last_success_timestamp_seconds", {"source": "health"}) == WALL

    clock.advance(30)  # health: two intervals without a success, still shown
    for name in ("status", "memory", "health"):
        store.source_read(name, False)
    assert got("opta_lmx_memory_usage_ratio") == 0.5
    assert got("opta_exporter_source_up", {"source": "health"}) == 0
    clock.advance(1)  # past two health intervals: gone; status and memory (60 s) stay
    assert got("opta_lmx_memory_usage_ratio") is None
    assert got("opta_lmx_health_status", {"status": "ok"}) is None
    assert got("opta_lmx_memory_used_bytes") is not None
    clock.advance(90)  # 121 s: past two snapshot intervals too
    for name in (
        "opta_lmx_memory_total_bytes",
        "opta_lmx_memory_used_bytes",
        "opta_lmx_memory_available_bytes",
        "opta_lmx_memory_threshold_ratio",
        "opta_lmx_requests_in_flight",
        "opta_lmx_requests_max_concurrent",
        "opta_lmx_start_time_seconds",
    ):
        assert got(name) is None, name
    assert got("opta_lmx_model_loaded", {"model": M, "format": "unknown"}) == 1  # events' own
    assert got("opta_exporter_source_last_success_timestamp_seconds", {"source": "status"}) == WALL
    store.source_read("memory", True)  # a read works again: its figures are back
    assert got("opta_lmx_memory_used_bytes") is not None
    assert got("opta_lmx_requests_in_flight") is None


def test_load_shedding_is_a_plain_flag(rig: Rig) -> None:
    assert rig.value("opta_lmx_load_shedding") == 0
    rig.store.set_shedding(True)
    assert rig.value("opta_lmx_load_shedding") == 1
    rig.store.set_shedding(False)
    assert rig.value("opta_lmx_load_shedding") == 0
