"""ThroughputWindow (the circular buffer) and window_stats, with hand-computed values."""

from __future__ import annotations

import pytest

from opta_exporter.core.window import ThroughputWindow, WindowStats, quantile, window_stats


def test_empty_window() -> None:
    window = ThroughputWindow(3)
    assert len(window) == 0
    assert window.latest is None
    assert window.copy() == []
    assert window_stats(window.copy()) is None


def test_window_is_circular() -> None:
    window = ThroughputWindow(3)
    for sample in (1.0, 2.0, 3.0):
        window.add(sample)
    assert window.copy() == [1.0, 2.0, 3.0]
    window.add(4.0)
    window.add(5.0)
    assert len(window) == 3
    assert window.copy() == [3.0, 4.0, 5.0]  # oldest samples fell out, order kept
    assert window.latest == 5.0


def test_latest_is_the_last_added_not_the_largest() -> None:
    window = ThroughputWindow(10)
    for sample in (90.0, 12.5, 40.0):
        window.add(sample)
    assert window.latest == 40.0


def test_window_of_one() -> None:
    window = ThroughputWindow(1)
    window.add(7.0)
    window.add(8.0)
    assert window.copy() == [8.0]
    assert window.latest == 8.0


def test_copy_and_clone_are_independent() -> None:
    window = ThroughputWindow(3)
    window.add(1.0)
    snapshot = window.copy()
    twin = window.clone()
    window.add(2.0)
    twin.add(9.0)
    assert snapshot == [1.0]
    assert window.copy() == [1.0, 2.0]
    assert twin.copy() == [1.0, 9.0]
    for sample in (3.0, 4.0):
        twin.add(sample)
    assert twin.copy() == [9.0, 3.0, 4.0]  # the clone keeps the size limit


def test_full_default_size_window_keeps_last_300() -> None:
    window = ThroughputWindow(300)
    for i in range(1000):
        window.add(float(i))
    assert len(window) == 300
    assert window.copy()[0] == 700.0
    stats = window_stats(window.copy())
    assert stats is not None
    assert (stats.min, stats.max) == (700.0, 999.0)


# samples, mean, p50, p95, max, min -- p50/p95 by linear interpolation between closest
# ranks (numpy's default): position = (n - 1) * q, value = lo + (hi - lo) * fraction.
STATS: list[tuple[str, list[float], WindowStats]] = [
    ("single sample", [7.0], WindowStats(7.0, 7.0, 7.0, 7.0, 7.0)),
    # n=2: p50 pos 0.5 -> 10 + 10*0.5 = 15; p95 pos 0.95 -> 10 + 10*0.95 = 19.5
    ("two samples", [20.0, 10.0], WindowStats(15.0, 15.0, 19.5, 20.0, 10.0)),
    # n=5 sorted 1..5: p50 pos 2 -> 3; p95 pos 3.8 -> 4 + 1*0.8 = 4.8
    ("five samples", [5.0, 1.0, 4.0, 2.0, 3.0], WindowStats(3.0, 3.0, 4.8, 5.0, 1.0)),
    # n=4 sorted 10,20,30,40: p50 pos 1.5 -> 25; p95 pos 2.85 -> 30 + 10*0.85 = 38.5
    ("four samples", [40.0, 10.0, 30.0, 20.0], WindowStats(25.0, 25.0, 38.5, 40.0, 10.0)),
    # n=11 sorted 0..9, 100: p50 pos 5 -> 5; p95 pos 9.5 -> 9 + 91*0.5 = 54.5;
    # mean (45 + 100) / 11
    (
        "a peak",
        [100.0, *[float(i) for i in range(10)]],
        WindowStats(145.0 / 11, 5.0, 54.5, 100.0, 0.0),
    ),
    ("all equal", [3.5, 3.5, 3.5], WindowStats(3.5, 3.5, 3.5, 3.5, 3.5)),
    ("zeros", [0.0, 0.0], WindowStats(0.0, 0.0, 0.0, 0.0, 0.0)),
]


@pytest.mark.parametrize(
    ("samples", "expected"), [pytest.param(s, e, id=name) for name, s, e in STATS]
)
def test_window_stats(samples: list[float], expected: WindowStats) -> None:
    stats = window_stats(samples)
    assert stats is not None
    assert stats.mean == pytest.approx(expected.mean)
    assert stats.p50 == pytest.approx(expected.p50)
    assert stats.p95 == pytest.approx(expected.p95)
    assert stats.max == expected.max
    assert stats.min == expected.min


def test_window_stats_does_not_reorder_its_input() -> None:
    samples = [3.0, 1.0, 2.0]
    window_stats(samples)
    assert samples == [3.0, 1.0, 2.0]


def test_stats_items_names_match_the_contract() -> None:
    stats = WindowStats(mean=1.0, p50=2.0, p95=3.0, max=4.0, min=0.5)
    assert stats.items() == (
        ("mean", 1.0),
        ("p50", 2.0),
        ("p95", 3.0),
        ("max", 4.0),
        ("min", 0.5),
    )


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
