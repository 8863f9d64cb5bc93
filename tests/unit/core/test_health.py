"""ExporterHealth (core/health.py): when the stream counts as up, and copies that stay put."""

from __future__ import annotations

import pytest

from opta_exporter.core.health import CONNECTION_STATES, RECONNECT_REASONS, ExporterHealth


@pytest.mark.parametrize(
    ("state", "last_activity", "now", "up"),
    [
        ("open", 100.0, 100.0, True),
        ("open", 100.0, 145.0, True),  # exactly the stale timeout: still up
        ("open", 100.0, 145.001, False),  # past it: stale
        ("open", None, 100.0, False),  # open, but nothing ever arrived or answered
        ("connecting", 100.0, 100.0, False),
        ("backoff", 100.0, 100.0, False),
        ("auth_failed", 100.0, 100.0, False),
        ("stopped", 100.0, 100.0, False),
    ],
)
def test_up_only_while_open_and_not_stale(
    state: str, last_activity: float | None, now: float, up: bool
) -> None:
    health = ExporterHealth(stale_timeout=45.0, connection_state=state)
    health.last_activity = last_activity
    assert health.up(now) is up


def test_every_state_and_reason_starts_known() -> None:
    """The families list every state and reason from the first scrape (absent() = broken)."""
    health = ExporterHealth()
    assert health.connection_state in CONNECTION_STATES
    assert set(health.reconnects) == set(RECONNECT_REASONS)
    assert all(count == 0 for count in health.reconnects.values())
    assert health.resyncs == {"success": 0.0, "failure": 0.0}


def test_a_copy_does_not_move_with_the_live_health() -> None:
    live = ExporterHealth()
    copy = live.copy()
    live.reconnects["eof"] += 1
    live.resyncs["failure"] += 1
    live.connection_state = "open"
    assert copy.reconnects["eof"] == 0
    assert copy.resyncs["failure"] == 0
    assert copy.connection_state == "connecting"
