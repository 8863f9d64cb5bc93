"""Tokens/s from two reads of LMX's completion-token counter, and the window it feeds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opta_exporter.core.state import LmxState
from opta_exporter.core.throughput import TokenCount, rate


def count(mono: float, tokens: float, uptime: float | None = None) -> TokenCount:
    return TokenCount(mono=mono, wall=1_000_000.0 + mono, completion_tokens=tokens, uptime=uptime)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (count(0.0, 100.0), count(15.0, 400.0), 20.0),
        (count(0.0, 100.0), count(15.0, 100.0), 0.0),  # idle: a real zero
        (count(10.0, 0.0, 10.0), count(25.0, 30.0, 25.0), 2.0),
        (count(0.0, 500.0), count(15.0, 40.0), None),  # counter went down: LMX restarted
        # restarted and already past the old count: its uptime says so
        (count(0.0, 10.0, 3600.0), count(15.0, 50.0, 5.0), None),
        (count(5.0, 10.0), count(5.0, 20.0), None),  # no time between the reads
        (count(0.0, 0.0), count(1e-320, 1e300), None),  # overflows to inf: no sample
    ],
)
def test_rate(before: TokenCount, after: TokenCount, expected: float | None) -> None:
    assert rate(before, after) == expected


@given(st.lists(st.tuples(st.floats(0.5, 60.0), st.integers(0, 10_000)), min_size=2, max_size=30))
def test_the_window_holds_delta_tokens_over_delta_t_for_every_pair(
    steps: list[tuple[float, int]],
) -> None:
    state = LmxState(window_duration=1e9)
    mono, tokens = 0.0, 0.0
    expected = []
    for i, (gap, new_tokens) in enumerate(steps):
        mono += gap
        tokens += new_tokens
        state.count_tokens(count(mono, tokens))
        if i:
            expected.append(new_tokens / gap)
    got = [r for _, r in state.window.samples(2_000_000.0)]
    assert got == pytest.approx(expected)


def test_a_restart_gives_no_sample_and_the_next_pair_counts_from_zero() -> None:
    state = LmxState()
    assert state.count_tokens(count(0.0, 1000.0, 600.0)) is None  # the first read: no pair
    assert state.count_tokens(count(15.0, 1300.0, 615.0)) == 20.0
    assert state.count_tokens(count(30.0, 30.0, 3.0)) is None  # LMX restarted in between
    assert state.count_tokens(count(45.0, 180.0, 18.0)) == 10.0
    assert [r for _, r in state.window.samples(1_000_045.0)] == [20.0, 10.0]
