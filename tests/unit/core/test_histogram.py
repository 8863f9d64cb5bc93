"""Histogram families: a scrape's copy shares series and is never written afterwards."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from opta_exporter.core.histogram import HistogramFamily

BOUNDS = (0.1, 1.0, 10.0)
Step = tuple[str, float] | None  # an observation, or None for a copy


def test_a_copy_shares_unchanged_series_and_keeps_its_numbers() -> None:
    live = HistogramFamily(BOUNDS)
    live.observe(("a",), 0.5)
    live.observe(("b",), 5.0)
    first = live.copy()
    live.observe(("a",), 0.05)
    second = live.copy()
    assert first.series[("b",)] is second.series[("b",)]  # untouched: the same object
    assert first.series[("a",)] is not second.series[("a",)]
    assert first.series[("a",)].counts == [0, 1, 0, 0]  # the copy did not see the write
    assert second.series[("a",)].counts == [1, 1, 0, 0]
    assert second.series[("a",)].total == 0.55
    assert live == second  # equal by numbers, whatever the generations


def test_writing_to_a_copy_leaves_the_live_family_alone() -> None:
    live = HistogramFamily(BOUNDS)
    live.observe(("a",), 0.5)
    twin = live.copy()
    twin.observe(("a",), 50.0)
    assert live.series[("a",)].counts == [0, 1, 0, 0]
    assert twin.series[("a",)].counts == [0, 1, 0, 1]


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.tuples(st.sampled_from("abc"), st.floats(0.0, 20.0, allow_nan=False)),
        ),
        max_size=60,
    )
)
def test_every_copy_holds_the_numbers_of_its_moment(steps: list[Step]) -> None:
    """Against deep copies taken at the same moments: whatever the interleaving of
    observations and copies, no copy changes afterwards, and a series shared by two
    consecutive copies has not been observed between them."""
    live = HistogramFamily(BOUNDS)
    taken: list[tuple[HistogramFamily, HistogramFamily]] = []
    touched: set[str] = set()
    for step in steps:
        if step is None:
            shared = live.copy()
            if taken:
                before = taken[-1][0]
                for key, series in shared.series.items():
                    if key in before.series and key[0] not in touched:
                        assert series is before.series[key]
            taken.append((shared, copy.deepcopy(shared)))
            touched.clear()
        else:
            live.observe((step[0],), step[1])
            touched.add(step[0])
    for shared, frozen in taken:
        assert shared == frozen
