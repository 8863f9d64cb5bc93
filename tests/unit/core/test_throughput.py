"""Tokens/s from two reads of LMX's completion-token counters, overall and per model, and
the windows they feed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opta_exporter.core.state import LmxState
from opta_exporter.core.throughput import TokenCount, model_rates, rate


def count(
    mono: float, tokens: float, uptime: float | None = None, **per_model: float
) -> TokenCount:
    return TokenCount(
        mono=mono,
        wall=1_000_000.0 + mono,
        completion_tokens=tokens,
        uptime=uptime,
        per_model=per_model,
    )


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
    got = [r for _, r in state.throughput.window.samples(2_000_000.0)]
    assert got == pytest.approx(expected)


def test_a_restart_gives_no_sample_and_the_next_pair_counts_from_zero() -> None:
    state = LmxState()
    assert state.count_tokens(count(0.0, 1000.0, 600.0)) is None  # the first read: no pair
    assert state.count_tokens(count(15.0, 1300.0, 615.0)) == 20.0
    assert state.count_tokens(count(30.0, 30.0, 3.0)) is None  # LMX restarted in between
    assert state.count_tokens(count(45.0, 180.0, 18.0)) == 10.0
    assert [r for _, r in state.throughput.window.samples(1_000_045.0)] == [20.0, 10.0]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (
            count(0.0, 100.0, a=40.0, b=60.0),
            count(10.0, 400.0, a=240.0, b=160.0),
            {"a": 20.0, "b": 10.0},
        ),
        (count(0.0, 100.0, a=100.0), count(10.0, 100.0, a=100.0), {"a": 0.0}),  # idle: a zero
        # b served its first request between the reads: its counter has no start yet
        (count(0.0, 100.0, a=100.0), count(10.0, 300.0, a=200.0, b=100.0), {"a": 10.0}),
        # a went away (unloaded, or past the cap): no rate, not a zero
        (count(0.0, 100.0, a=50.0, b=50.0), count(10.0, 200.0, b=150.0), {"b": 10.0}),
        # a's counter went down while the total did not: its series started again
        (count(0.0, 100.0, a=90.0, b=10.0), count(10.0, 130.0, a=5.0, b=20.0), {"b": 1.0}),
        (count(0.0, 500.0, a=500.0), count(10.0, 40.0, a=40.0), {}),  # LMX restarted
        (count(0.0, 10.0, 3600.0, a=10.0), count(10.0, 50.0, 5.0, a=50.0), {}),  # by uptime
        (count(5.0, 10.0, a=10.0), count(5.0, 20.0, a=20.0), {}),  # no time passed
        (count(0.0, 0.0, a=0.0), count(1e-320, 0.0, a=1e300), {}),  # inf: no sample
    ],
    ids=["two", "idle", "new", "gone", "reset", "restart", "uptime", "no time", "overflow"],
)
def test_model_rates(before: TokenCount, after: TokenCount, expected: dict[str, float]) -> None:
    assert model_rates(before, after) == expected


def test_each_model_has_its_own_window_and_an_idle_one_leaves_with_its_samples() -> None:
    state = LmxState(window_duration=60.0)
    state.count_tokens(count(0.0, 0.0, a=0.0, b=0.0))
    state.count_tokens(count(10.0, 300.0, a=100.0, b=200.0))
    state.count_tokens(count(20.0, 400.0, a=200.0))  # b's series is gone from LMX's body
    now = 1_000_020.0
    assert [r for _, r in state.throughput.window.samples(now)] == [30.0, 10.0]
    assert [r for _, r in state.throughput.models["a"].samples(now)] == [10.0, 10.0]
    assert [r for _, r in state.throughput.models["b"].samples(now)] == [20.0]
    state.count_tokens(count(71.0, 400.0, a=200.0))  # b's one sample is out of the window
    assert set(state.throughput.models) == {"a"}


def test_a_copy_does_not_share_a_models_window() -> None:
    state = LmxState()
    state.count_tokens(count(0.0, 0.0, a=0.0))
    state.count_tokens(count(10.0, 100.0, a=100.0))
    twin = state.copy()
    state.count_tokens(count(20.0, 200.0, a=200.0))
    assert len(twin.throughput.models["a"]) == 1
    assert len(state.throughput.models["a"]) == 2


def test_model_windows_are_bounded_whatever_the_counts_say() -> None:
    state = LmxState(max_models=4)
    many = {f"m{i}": 0.0 for i in range(1000)}
    state.count_tokens(count(0.0, 0.0, **many))
    state.count_tokens(count(10.0, 10.0, **{m: 10.0 for m in many}))
    assert len(state.throughput.models) == 64  # _keep(): the larger of 4 x the cap and 64
