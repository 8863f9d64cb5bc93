"""Snapshotter (readers/snapshots.py) with `responses`: the plain request/response calls,
their failures, and the interval loop's second look."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.readers.snapshots import Snapshotter
from opta_exporter.store import Store
from tests.helpers import LMX, MEMORY, STATUS


def make(key: str | None = None) -> tuple[Snapshotter, Store]:
    store = Store(LmxState(), ExporterHealth())
    return Snapshotter(Config(lmx_url=LMX, admin_key=key), store, requests.Session()), store


@responses.activate
def test_resync_reconciles_and_sends_the_key_in_the_header_only() -> None:
    responses.get(f"{LMX}/admin/status", json=STATUS)
    responses.get(f"{LMX}/admin/memory", json=MEMORY)
    snapshotter, store = make(key="k-9")
    assert snapshotter.resync() == 0  # the first snapshot fills the state: no drift
    view = store.view()
    assert view.state.loaded == {"a": "unknown", "b": "unknown"}
    assert view.state.model_memory == {"a": 4.5 * 1024**3, "b": 2.0 * 1024**3}
    assert view.state.memory_threshold == 0.9
    assert view.health.resyncs == {"success": 1.0, "failure": 0.0}
    for call in responses.calls:
        assert call.request.headers["X-Admin-Key"] == "k-9"
        assert "k-9" not in (call.request.url or "")


@responses.activate
def test_second_snapshot_counts_drift() -> None:
    responses.get(f"{LMX}/admin/status", json=STATUS)
    responses.get(f"{LMX}/admin/memory", json=MEMORY)
    responses.get(f"{LMX}/admin/status", json={**STATUS, "models": ["b", "c"]})
    responses.get(f"{LMX}/admin/memory", json=MEMORY)
    snapshotter, store = make()
    assert snapshotter.resync() == 0
    assert snapshotter.resync() == 2  # a removed, c added
    assert set(store.view().state.loaded) == {"b", "c"}
    assert store.view().state.state_drift == 2.0


@responses.activate
def test_a_look_that_agrees_is_the_resync_and_one_that_disagrees_changes_nothing() -> None:
    """An interval whose snapshot agrees with the events costs one read of each route,
    applied at once (memory and gauges current); a disagreeing one applies nothing."""
    responses.get(f"{LMX}/admin/status", json=STATUS)
    responses.get(f"{LMX}/admin/memory", json=MEMORY)
    responses.get(f"{LMX}/admin/status", json=STATUS)
    responses.get(f"{LMX}/admin/memory", json={**MEMORY, "used_gb": 99.0})
    responses.get(f"{LMX}/admin/status", json={**STATUS, "models": ["b", "c"]})
    responses.get(f"{LMX}/admin/memory", json=MEMORY)
    snapshotter, store = make()
    assert snapshotter.resync() == 0
    assert snapshotter.look() == "agreed"
    view = store.view()
    assert view.state.memory_used == 99.0 * 1024**3  # applied by the look itself
    assert view.health.resyncs["success"] == 2.0
    assert len(responses.calls) == 4  # two routes, twice: no second read
    assert snapshotter.look() == "disagrees"
    assert set(store.view().state.loaded) == {"a", "b"}  # left to the confirming resync
    assert store.view().health.resyncs["success"] == 2.0


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500, "body": "oops"},
        {"status": 403, "json": {"detail": "Invalid or missing admin key"}},
        {"status": 200, "body": "<html>login</html>"},
        {"status": 200, "body": json.dumps([1, 2])},
        {"body": requests.ConnectTimeout("slow")},
        {"body": requests.ReadTimeout("slow")},
        {"body": requests.ConnectionError("refused")},
    ],
)
@responses.activate
def test_failed_snapshot_is_counted_and_changes_nothing(
    failure: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    responses.get(f"{LMX}/admin/status", **failure)
    responses.get(f"{LMX}/admin/memory", json=MEMORY)
    snapshotter, store = make(key="secret-key")
    assert snapshotter.resync() is None
    assert snapshotter.resync() is None
    view = store.view()
    assert view.health.resyncs == {"success": 0.0, "failure": 2.0}
    assert view.state.loaded == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, "a repeated failure is logged once"
    assert "/admin/status" in warnings[0]
    assert all("secret-key" not in r.getMessage() for r in caplog.records)


class FakeSnapshotter:
    """Scripted answers for the interval loop: (what the look saw, resync drift) per
    interval."""

    def __init__(self, script: list[tuple[str, int]], stop: Any) -> None:
        self.script, self.stop = list(script), stop
        self.calls: list[str] = []

    def _next(self) -> tuple[str, int]:
        step = self.script.pop(0)
        if not self.script:
            self.stop.set()
        return step

    def look(self) -> str:
        self.calls.append("look")
        seen = self.script[0][0]
        if seen == "agreed":  # applied by the look itself: the interval is over
            self._next()
        return seen

    def resync(self) -> int:
        self.calls.append("resync")
        return self._next()[1]


@pytest.mark.parametrize(
    ("script", "drifts", "calls"),
    [
        # LMX agrees with the events: one read an interval, no second
        ([("agreed", 0), ("agreed", 0)], [], ["look", "look"]),
        # the event was on the wire: the second look agrees
        ([("disagrees", 0)], [], ["look", "resync"]),
        # still wrong a moment later: lost events
        ([("disagrees", 2), ("agreed", 0)], [2], ["look", "resync", "look"]),
        # LMX could not be read: the resync says why
        ([("failed", 0)], [], ["look", "resync"]),
    ],
)
def test_interval_loop_takes_a_second_look_before_calling_it_drift(
    script: list[tuple[str, int]], drifts: list[int], calls: list[str]
) -> None:
    import threading

    from opta_exporter.readers.snapshots import snapshot_loop

    stop = threading.Event()
    fake = FakeSnapshotter(script, stop)
    seen: list[int] = []
    snapshot_loop(fake, 0.001, stop, seen.append)  # type: ignore[arg-type]
    assert seen == drifts
    assert fake.calls == calls
