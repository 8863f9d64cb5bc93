"""Backoff (stream/backoff.py): the wait after each kind of ending, a server's retry as a
floor for the next wait only and never above the cap, and the jitter's range."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opta_exporter.config import Config
from opta_exporter.stream.backoff import Backoff
from opta_exporter.stream.transport import StreamEnded


@pytest.mark.parametrize(
    ("ended", "failures_before", "expected"),
    [
        (StreamEnded("eof", "x"), 0, 1.0),
        (StreamEnded("eof", "x"), 3, 8.0),
        (StreamEnded("eof", "x"), 10, 30.0),
        (StreamEnded("eof", "x", healthy=True), 10, 1.0),
        (StreamEnded("auth", "x"), 0, 30.0),
        (StreamEnded("dropped", "x"), 5, 0.0),
        (StreamEnded("http_error", "x", retry_after=20.0), 0, 20.0),
    ],
)
def test_next_wait_policy(ended: StreamEnded, failures_before: int, expected: float) -> None:
    """Proportional jitter: with rng() = 1 each wait is the undamped delay."""
    config = Config()
    backoff = Backoff(config.backoff_base, config.backoff_cap, rng=lambda: 1.0)
    for _ in range(failures_before):
        backoff.next_wait(StreamEnded("eof", "x"))
    assert backoff.next_wait(ended) == expected


def test_a_retry_field_sets_a_floor_a_hostile_one_is_bounded() -> None:
    backoff = Backoff(1.0, 30.0, rng=lambda: 1.0)
    backoff.server_retry = 12.0
    assert backoff.next_wait(StreamEnded("eof", "x")) == 12.0
    backoff.server_retry = 10.0**9  # `retry: 1000000000000`
    assert backoff.next_wait(StreamEnded("eof", "x")) == 30.0  # the configured cap


def test_a_retry_field_floors_the_next_wait_only() -> None:
    """Before: a `retry:` stuck to every later reconnect (a 600 s floor, for good)."""
    backoff = Backoff(1.0, 30.0, rng=lambda: 1.0)
    backoff.server_retry = 10.0**9
    assert backoff.next_wait(StreamEnded("eof", "x")) == 30.0
    assert backoff.next_wait(StreamEnded("eof", "x", healthy=True)) == 1.0
    assert backoff.server_retry is None


def test_retry_after_floors_the_next_wait_only_capped() -> None:
    backoff = Backoff(1.0, 30.0, rng=lambda: 1.0)
    assert backoff.next_wait(StreamEnded("http_error", "x", retry_after=999999.0)) == 30.0
    assert backoff.next_wait(StreamEnded("eof", "x", healthy=True)) == 1.0
    assert backoff.next_wait(StreamEnded("http_error", "x", retry_after=5.0)) == 5.0
    assert backoff.next_wait(StreamEnded("eof", "x")) == 4.0  # third failure, no floor


def test_a_dropped_subscription_uses_up_the_floor() -> None:
    """`dropped` resubscribes at once; the floor does not wait for a later ending."""
    backoff = Backoff(1.0, 30.0, rng=lambda: 1.0)
    backoff.server_retry = 20.0
    assert backoff.next_wait(StreamEnded("dropped", "x")) == 0.0
    assert backoff.next_wait(StreamEnded("eof", "x")) == 1.0


ENDINGS = st.builds(
    StreamEnded,
    st.sampled_from(["eof", "timeout", "stale", "auth", "http_error", "protocol", "dropped"]),
    st.just("x"),
    healthy=st.booleans(),
    retry_after=st.none() | st.floats(min_value=0.0, max_value=1e12),
)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=0.01, max_value=10.0),
    st.floats(min_value=0.01, max_value=100.0),
    st.floats(min_value=0.0, max_value=1.0),
    st.lists(st.tuples(ENDINGS, st.none() | st.floats(min_value=0.0, max_value=1e12)), max_size=20),
)
def test_every_wait_is_within_the_cap_and_a_floor_never_outlives_its_wait(
    base: float,
    extra: float,
    draw: float,
    endings: list[tuple[StreamEnded, float | None]],
) -> None:
    """Whatever the server says, no wait exceeds the cap; a wait after a floor is what the
    same policy without that floor would have waited."""
    cap = base + extra
    rng: Callable[[], float] = functools.partial(float, draw)
    backoff, twin = Backoff(base, cap, rng), Backoff(base, cap, rng)
    for ended, retry in endings:
        backoff.server_retry = retry
        wait = backoff.next_wait(ended)
        plain = twin.next_wait(StreamEnded(ended.reason, "x", healthy=ended.healthy))
        assert 0.0 <= wait <= cap
        if ended.reason == "dropped":
            assert wait == 0.0
        else:
            assert wait >= base / 2
            floor = max(ended.retry_after or 0.0, retry or 0.0)
            assert wait == max(plain, min(floor, cap))
        assert backoff.server_retry is None


def test_jitter_stays_within_half_to_full_delay() -> None:
    for draw, expected in ((0.0, 1.0), (0.5, 1.5), (1.0, 2.0)):
        backoff = Backoff(2.0, 30.0, rng=functools.partial(float, draw))
        assert backoff.next_wait(StreamEnded("eof", "x")) == expected
