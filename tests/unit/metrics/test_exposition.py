"""The fast exposition (metrics/exposition.py) says exactly what the client library says, in
both formats."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.histogram import HistogramFamily, Series
from opta_exporter.core.readings import Download, parse_quantize
from opta_exporter.core.state import LmxState
from opta_exporter.core.throughput import TokenCount
from opta_exporter.metrics.collector import LmxCollector, tables
from opta_exporter.metrics.exposition import Exposition, render
from opta_exporter.metrics.specs import MetricSpec, Sample, Table
from opta_exporter.store import Store
from tests.fakes import FakeClock

ODD = ['we"ird\\x.gguf', "line\nbreak", "emoji 🦙", "plain", "é" * 200]


def busy_store() -> Store:
    """Every kind of family filled, odd model ids, and the throughput window (on a fake
    clock, so its samples are inside the span at every scrape)."""
    clock = FakeClock()
    store = Store(LmxState(max_models=50), ExporterHealth(), clock)
    for i, model in enumerate(ODD):
        store.ingest(
            "model_loaded",
            json.dumps(
                {"model_id": model, "format": "gguf", "memory_gb": 1.5 + i, "duration_sec": 2}
            ),
        )
        store.ingest(
            "model_readiness_changed",
            json.dumps({"model_id": model, "state": "routable", "crash_count": i}),
        )
    store.ingest("model_canary_passed", json.dumps({"model_id": "plain", "duration_sec": 1.0}))
    store.ingest("download_completed", json.dumps({"repo_id": 'r"1', "duration_sec": 1e6}))
    store.set_downloads((Download('r"1', 0.5, 5.0, 10.0),))
    store.set_quantize(parse_quantize({"jobs": [{"status": "running"}]}))
    store.ingest("heartbeat", json.dumps({"timestamp": 1.0}))
    store.set_connection("open")
    tokens = 0.0
    for tps in (1e-9, 1.0, 2.0, 1e6):  # relay reads 15 s apart: awkward rates included
        store.count_tokens(TokenCount(clock.mono, clock.wall, tokens))
        clock.advance(15.0)
        tokens += 15.0 * tps
    store.count_tokens(TokenCount(clock.mono, clock.wall, tokens))
    return store


def load(store: Store, model: str, fmt: str, seconds: float) -> None:
    data = {"model_id": model, "format": fmt, "duration_sec": seconds}
    store.ingest("model_loaded", json.dumps(data))


def parsed(
    families: Any,
) -> dict[str, tuple[str, str, set[tuple[str, tuple[tuple[str, str], ...], float]]]]:
    return {
        f.name: (
            f.type,
            f.documentation,
            {(s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples},
        )
        for f in families
    }


def library(store: Store, openmetrics: bool) -> str:
    registry = CollectorRegistry()
    registry.register(LmxCollector(store))
    if openmetrics:
        text: bytes = om_exposition.generate_latest(registry)  # type: ignore[no-untyped-call]
        return text.decode()
    return generate_latest(registry).decode()


def ours(store: Store, openmetrics: bool) -> str:
    view = store.view()
    return render(tables(view.state, view.health, view.now, view.wall), openmetrics) + (
        "# EOF\n" if openmetrics else ""
    )


@pytest.mark.parametrize(
    "store_factory",
    [busy_store, lambda: Store(LmxState(), ExporterHealth())],
    ids=["busy", "empty"],
)
def test_text_format_matches_the_library(store_factory: Callable[[], Store]) -> None:
    store = store_factory()
    assert parsed(text_string_to_metric_families(ours(store, False))) == parsed(
        text_string_to_metric_families(library(store, False))
    )


@pytest.mark.parametrize(
    "store_factory",
    [busy_store, lambda: Store(LmxState(), ExporterHealth())],
    ids=["busy", "empty"],
)
def test_openmetrics_matches_the_library(store_factory: Callable[[], Store]) -> None:
    store = store_factory()
    theirs = parsed(om_parse(library(store, True)))  # type: ignore[no-untyped-call]
    assert parsed(om_parse(ours(store, True))) == theirs  # type: ignore[no-untyped-call]


def test_text_is_byte_identical_to_the_library() -> None:
    store = busy_store()
    text = ours(store, False)
    assert 'opta_lmx_throughput_window_tokens_per_second{stat="latest"} 1e+06' in text
    assert "opta_lmx_throughput_window_samples 4.0" in text
    assert text == library(store, False)
    assert ours(store, True) == library(store, True)


def test_the_histogram_cache_never_serves_stale_lines() -> None:
    from opta_exporter.metrics.exposition import Exposition

    store = busy_store()
    exposition = Exposition()
    for step in range(4):
        for openmetrics in (False, True):
            view = store.view()
            fresh = tables(view.state, view.health, view.now, view.wall)
            assert exposition.render(fresh, openmetrics) == render(fresh, openmetrics)
        load(store, ODD[step], "gguf", 0.5 * step)  # one series changes...
        store.ingest("model_unloaded", json.dumps({"model_id": ODD[-1 - step]}))
        load(store, f"new-{step}", "safetensors", 3.0)  # ...and `other` appears, then grows
        store.ingest("model_canary_failed", json.dumps({"model_id": "plain", "duration_sec": 9}))


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=20))
def test_numbers_are_spelled_as_the_library_spells_them(numbers: list[float]) -> None:
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    from opta_exporter.metrics.specs import MetricSpec

    spec = MetricSpec("x_value", "gauge", ("i",), "x.")
    table: list[tuple[tuple[str, ...], float]] = [((str(i),), v) for i, v in enumerate(numbers)]
    family = GaugeMetricFamily("x_value", "x.", labels=["i"])
    for labels, v in table:
        family.add_metric(list(labels), v)

    class One(Collector):
        def collect(self) -> list[GaugeMetricFamily]:
            return [family]

    registry = CollectorRegistry()
    registry.register(One())
    assert render([(spec, table)], False) == generate_latest(registry).decode()


# -- the cached templates against the library, table by table ---------------------------
GAUGE = MetricSpec("x_value", "gauge", ("model", "kind"), "A gauge, 100% sure.")
COUNTER = MetricSpec("x_things_total", "counter", ("model",), 'Things "counted".')
HISTOGRAM = MetricSpec("x_seconds", "histogram", ("model", "z"), "A histogram.")
PERCENT = ["50% off", "%s %d %%", "%(x)s", "%"]
Tables = list[tuple[MetricSpec, Table]]


def library_text(families: Tables, openmetrics: bool) -> str:
    """What the client library writes for the tables, as collector.py hands them over."""

    class Families(Collector):
        def collect(self) -> list[Metric]:
            out: list[Metric] = []
            for spec, table in families:
                names = list(spec.labels)
                if isinstance(table, HistogramFamily):
                    histogram = HistogramMetricFamily(spec.name, spec.help, labels=names)
                    for labels, series in table.series.items():
                        histogram.add_metric(
                            list(labels),
                            buckets=series.cumulative(table.bounds),
                            sum_value=series.total,
                        )
                    out.append(histogram)
                    continue
                kind = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
                family = kind(spec.name, spec.help, labels=names)
                for labels, value in table:
                    family.add_metric(list(labels), value)
                out.append(family)
            return out

    registry = CollectorRegistry()
    registry.register(Families())
    if openmetrics:
        text: bytes = om_exposition.generate_latest(registry)  # type: ignore[no-untyped-call]
        return text.decode()
    return generate_latest(registry).decode()


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["model_loaded", "model_loaded", "model_unloaded", None]),
            st.sampled_from(ODD[:3]),
            st.floats(0.0, 40.0),
        ),
        max_size=25,
    )
)
def test_kept_series_text_follows_any_sequence_of_events(
    steps: list[tuple[str | None, str, float]],
) -> None:
    """A histogram series' text is kept while it is the same object in the next scrape's
    copy: whatever the events between scrapes, the kept text is what a fresh render says."""
    store = busy_store()
    exposition = Exposition()
    for event, model, seconds in steps:
        if event is not None:
            fmt = "mlx" if seconds > 30 else "gguf"  # a new series now and then
            data = {"model_id": model, "format": fmt, "duration_sec": seconds}
            store.ingest(event, json.dumps(data))
        view = store.view()
        fresh = tables(view.state, view.health, view.now, view.wall)
        openmetrics = seconds > 20
        assert exposition.render(fresh, openmetrics) == render(fresh, openmetrics)


def assert_library_text(exposition: Exposition, families: Tables) -> None:
    for openmetrics in (False, True):
        ours = exposition.render(families, openmetrics) + ("# EOF\n" if openmetrics else "")
        assert ours == library_text(families, openmetrics)


def test_a_reused_exposition_follows_label_sets_and_values() -> None:
    """Series come and go, reorder and change value between renders of one Exposition."""
    exposition = Exposition()
    models = ["a", *PERCENT, 'q"\\\n']
    for step in range(6):
        present = models[step % 3 :: 1 + step % 2]
        if step == 4:
            present = list(reversed(present))
        families: Tables = [
            (GAUGE, [((m, k), float(step * i)) for i, m in enumerate(present) for k in "xy"]),
            (COUNTER, [((m,), 10.0**step + i) for i, m in enumerate(present)]),
            (
                HISTOGRAM,
                HistogramFamily(
                    (0.5, 1, 2.5),
                    {
                        (m, "z"): Series([step, i, 0, step * i], 0.1 * step * i)
                        for i, m in enumerate(present)
                    },
                ),
            ),
            (MetricSpec("x_empty", "gauge", (), "None yet."), [] if step % 2 else [((), 1.0)]),
        ]
        assert_library_text(exposition, families)
        assert_library_text(exposition, families)  # unchanged: the kept text


AWKWARD = [
    0.0, -0.0, 1.0, -1.0, 5, 1e-9, 999_999.0, 999_999.999_999_999_9, 1e6, 1e6 + 0.5,
    123_456_789.0, 1e16, 1e22, -1e7, math.inf, -math.inf, math.nan, 4e9,
]  # fmt: skip


@pytest.mark.parametrize("value", AWKWARD, ids=repr)
def test_awkward_numbers_in_a_plain_family(value: float) -> None:
    """A value spelled with an exponent, NaN or ±Inf sends its family the slow way; -0.0
    after 0.0 is a change, though the two compare equal."""
    exposition = Exposition()
    for values in ([0.5, 0.0, 2.0], [0.5, value, 2.0], [0.5, -0.0, 2.0], [0.5, value, 2.0]):
        table: list[Sample] = [((m, "k"), v) for m, v in zip(PERCENT[:3], values, strict=True)]
        assert_library_text(exposition, [(GAUGE, table)])


def test_histogram_counts_and_sums_past_a_million() -> None:
    exposition = Exposition()
    for count, total in [
        (5, 0.25),
        (999_999, 1e6 - 1),
        (1_000_000, 1e6),
        (20_000_000, math.inf),
        (3, math.nan),
        (70_000, -2.5),
        (0, -0.0),
        (0, 0.0),
    ]:
        family = HistogramFamily(
            (0.1, 1.0, 10.0),
            {
                ("big", PERCENT[1]): Series([count, 1, 999_999, 2], total),
                ("small", "z"): Series([1, 2, 3, 4], 1.5),
            },
        )
        assert_library_text(exposition, [(HISTOGRAM, family)])


def test_negative_counts_and_an_inf_only_histogram() -> None:
    """Neither comes from the state, but the spelling holds."""
    families: Tables = [
        (HISTOGRAM, HistogramFamily((1.0,), {("m", "z"): Series([-3, 5], -1.0)})),
        (
            MetricSpec("x_only_inf", "histogram", (), "h."),
            HistogramFamily((), {(): Series([7], 7.0)}),
        ),
    ]
    assert_library_text(Exposition(), families)


@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 2_000_000), min_size=4, max_size=4),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=6,
    ),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=6),
)
def test_any_histogram_and_gauge_is_spelled_as_the_library_spells_it(
    series: list[tuple[list[int], float]], values: list[float]
) -> None:
    exposition = Exposition()
    for _ in range(2):
        families: Tables = [
            (
                HISTOGRAM,
                HistogramFamily(
                    (0.25, 1.0, 4.0),
                    {(str(i), "z"): Series(c, total) for i, (c, total) in enumerate(series)},
                ),
            ),
            (COUNTER, [((str(i),), v) for i, v in enumerate(values)]),
        ]
        assert_library_text(exposition, families)
        series = [([c + 1 for c in counts], total) for counts, total in series[1:]]


def test_concurrent_scrapes_share_an_exposition() -> None:
    """Entries are replaced whole and the count table only gains entries: no lock."""
    exposition = Exposition()

    def families(step: int) -> Tables:
        models = [f"m{i}" for i in range(step % 7 + 1)]
        return [
            (GAUGE, [((m, "k"), float(step)) for m in models]),
            (
                HISTOGRAM,
                HistogramFamily((1.0,), {(m, "z"): Series([step * 97, step], 0.5) for m in models}),
            ),
        ]

    expected = {
        (step, om): library_text(families(step), om).removesuffix("# EOF\n")
        for step in range(40)
        for om in (False, True)
    }
    with ThreadPoolExecutor(4) as pool:
        rendered = pool.map(
            lambda key: (key, exposition.render(families(key[0]), key[1])), list(expected) * 3
        )
        for key, text in rendered:
            assert text == expected[key]
