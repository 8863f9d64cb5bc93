"""ThroughputWindow (a span of time) and window_stats, with hand-computed values."""

from __future__ import annotations

import pytest

from opta_exporter.core.window import (
    WINDOW_STATS,
    ThroughputWindow,
    WindowStats,
    quantile,
    window_stats,
)


def test_empty_window() -> None:
    window = ThroughputWindow(300.0)
    assert len(window) == 0
    assert window.samples(1000.0) == []
    assert window_stats(window.samples(1000.0)) is None


def test_window_keeps_a_span_of_time_not_a_count() -> None:
    window = ThroughputWindow(60.0)
    for t in (0.0, 15.0, 30.0, 45.0, 60.0):
        window.add(t, t / 10)
    assert len(window) == 5  # 0 is exactly 60 s old at 60: still inside
    window.add(75.0, 7.5)
    assert window.samples(75.0) == [(15.0, 1.5), (30.0, 3.0), (45.0, 4.5), (60.0, 6.0), (75.0, 7.5)]
    # read later with no new sample (the relay went quiet): older samples leave the view
    assert window.samples(120.0) == [(60.0, 6.0), (75.0, 7.5)]
    assert window.samples(200.0) == []


def test_a_clock_stepped_back_keeps_the_samples() -> None:
    window = ThroughputWindow(60.0)
    window.add(1000.0, 1.0)
    window.add(10.0, 2.0)  # wall clock stepped back by NTP
    assert len(window) == 2


def test_the_count_limit_bounds_a_window_fed_very_fast() -> None:
    window = ThroughputWindow(300.0, limit=3)
    for t in range(10):
        window.add(float(t), float(t))
    assert window.samples(9.0) == [(7.0, 7.0), (8.0, 8.0), (9.0, 9.0)]


def test_clone_is_independent() -> None:
    window = ThroughputWindow(60.0)
    window.add(1.0, 1.0)
    twin = window.clone()
    window.add(2.0, 2.0)
    twin.add(3.0, 9.0)
    assert window.samples(3.0) == [(1.0, 1.0), (2.0, 2.0)]
    assert twin.samples(3.0) == [(1.0, 1.0), (3.0, 9.0)]
    assert twin.duration == 60.0


def test_latest_is_the_newest_sample_not_the_largest() -> None:
    stats = window_stats([(1.0, 90.0), (2.0, 12.5), (3.0, 40.0)])
    assert stats is not None
    assert stats.latest == 40.0


# samples, mean, p50, p95, max, min -- p50/p95 by linear interpolation between closest
# ranks (numpy's default): position = (n - 1) * q, value = lo + (hi - lo) * fraction.
STATS: list[tuple[str, list[float], WindowStats]] = [
    ("single sample", [7.0], WindowStats(7.0, 7.0, 7.0, 7.0, 7.0, 7.0)),
    # n=2: p50 pos 0.5 -> 10 + 10*0.5 = 15; p95 pos 0.95 -> 10 + 10*0.95 = 19.5
    ("two samples", [20.0, 10.0], WindowStats(15.0, 15.0, 19.5, 20.0, 10.0, 10.0)),
    # n=5 sorted 1..5: p50 pos 2 -> 3; p95 pos 3.8 -> 4 + 1*0.8 = 4.8
    ("five samples", [5.0, 1.0, 4.0, 2.0, 3.0], WindowStats(3.0, 3.0, 4.8, 5.0, 1.0, 3.0)),
    # n=4 sorted 10,20,30,40: p50 pos 1.5 -> 25; p95 pos 2.85 -> 30 + 10*0.85 = 38.5
    ("four samples", [40.0, 10.0, 30.0, 20.0], WindowStats(25.0, 25.0, 38.5, 40.0, 10.0, 20.0)),
    # n=11 sorted 0..9, 100: p50 pos 5 -> 5; p95 pos 9.5 -> 9 + 91*0.5 = 54.5;
    # mean (45 + 100) / 11
    (
        "a peak",
        [100.0, *[float(i) for i in range(10)]],
        WindowStats(145.0 / 11, 5.0, 54.5, 100.0, 0.0, 9.0),
    ),
    ("all equal", [3.5, 3.5, 3.5], WindowStats(3.5, 3.5, 3.5, 3.5, 3.5, 3.5)),
    ("zeros", [0.0, 0.0], WindowStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
]


@pytest.mark.parametrize(
    ("samples", "expected"), [pytest.param(s, e, id=name) for name, s, e in STATS]
)
def test_window_stats(samples: list[float], expected: WindowStats) -> None:
    stats = window_stats([(float(t), rate) for t, rate in enumerate(samples)])
    assert stats is not None
    assert stats.mean == pytest.approx(expected.mean)
    assert stats.p50 == pytest.approx(expected.p50)
    assert stats.p95 == pytest.approx(expected.p95)
    assert stats.max == expected.max
    assert stats.min == expected.min
    assert stats.latest == expected.latest


def test_window_stats_does_not_reorder_its_input() -> None:
    samples = [(1.0, 3.0), (2.0, 1.0), (3.0, 2.0)]
    window_stats(samples)
    assert samples == [(1.0, 3.0), (2.0, 1.0), (3.0, 2.0)]


def test_stats_items_names_match_the_contract() -> None:
    stats = WindowStats(mean=1.0, p50=2.0, p95=3.0, max=4.0, min=0.5, latest=2.5)
    assert stats.items() == (
        ("mean", 1.0),
        ("p50", 2.0),
        ("p95", 3.0),
        ("max", 4.0),
        ("min", 0.5),
        ("latest", 2.5),
    )
    assert tuple(name for name, _ in stats.items()) == WINDOW_STATS


@pytest.mark.parametrize(
    ("ordered", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),
        ([1.0, 2.0, 3.0, 4.0], 0.25, 1.75),  # pos 0.75
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),  # pos 1.5
        ([0.0, 10.0], 0.95, 9.5),
        ([42.0], 0.95, 42.0),
    ],
)
def test_quantile(ordered: list[float], q: float, expected: float) -> None:
    assert quantile(ordered, q) == pytest.approx(expected)
