"""Backoff (stream/backoff.py): the wait after each kind of ending, a server's retry as a
floor with a bound, and the jitter's range."""

from __future__ import annotations

import functools

import pytest

from opta_exporter.config import Config
from opta_exporter.stream.backoff import MAX_SERVER_WAIT, Backoff
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
    backoff.server_retry = 10.0**9
    assert backoff.next_wait(StreamEnded("eof", "x")) == MAX_SERVER_WAIT


def test_jitter_stays_within_half_to_full_delay() -> None:
    for draw, expected in ((0.0, 1.0), (0.5, 1.5), (1.0, 2.0)):
        backoff = Backoff(2.0, 30.0, rng=functools.partial(float, draw))
        assert backoff.next_wait(StreamEnded("eof", "x")) == expected
