"""PolledSource (readers/source.py): an admin read into the store, reported as a source."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
import responses

from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth, SourceStatus
from opta_exporter.core.readings import HealthReading
from opta_exporter.core.state import LmxState
from opta_exporter.lmx.client import LmxClient
from opta_exporter.readers.source import PolledSource, admin_sources
from opta_exporter.store import Store
from tests.fakes import FakeClock
from tests.helpers import LMX

KEY = "health-key"


def make() -> tuple[PolledSource[Any], Store, FakeClock]:
    """The health source as the daemon builds it."""
    clock = FakeClock()
    store = Store(LmxState(), ExporterHealth(sources={"health": SourceStatus(15.0)}), clock)
    sources = admin_sources(Config(lmx_url=LMX), LmxClient(LMX, KEY, requests.Session()), store)
    reader = sources[0]
    assert (reader.name, reader.wait()) == ("health", 15.0)
    return reader, store, clock


@responses.activate
def test_a_read_lands_in_the_store_and_the_source_is_up() -> None:
    responses.get(f"{LMX}/admin/health", json={"status": "ok", "memory_usage_percent": 40})
    reader, store, clock = make()
    assert reader.read_once()
    view = store.view()
    assert view.state.health == HealthReading("ok", 0.4, {})
    assert view.health.sources["health"] == SourceStatus(15.0, True, clock.wall, clock.mono)


@responses.activate
def test_a_failed_read_keeps_the_last_success_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    reader, store, clock = make()
    responses.get(f"{LMX}/admin/health", json={"status": "ok", "memory_usage_percent": 40})
    assert reader.read_once()
    read_at = (clock.wall, clock.mono)
    responses.replace(responses.GET, f"{LMX}/admin/health", status=500)
    for _ in range(3):
        clock.advance(15)
        assert not reader.read_once()
    source = store.view().health.sources["health"]
    assert not source.up
    assert (source.last_success_wall, source.last_success_mono) == read_at
    assert not source.fresh(clock.mono)  # 45 s after the last success: past two intervals
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["health read failed: /admin/health: HTTP 500"]
    responses.replace(responses.GET, f"{LMX}/admin/health", json={"status": "degraded"})
    assert reader.read_once()
    assert caplog.records[-1].getMessage() == "health read works again"
    assert all(KEY not in r.getMessage() for r in caplog.records)


@responses.activate
def test_jobs_are_read_often_only_while_something_runs() -> None:
    clock = FakeClock()
    store = Store(LmxState(), ExporterHealth(sources={"downloads": SourceStatus(60.0)}), clock)
    config = Config(lmx_url=LMX, jobs_interval=60.0, jobs_busy_interval=5.0)
    sources = admin_sources(config, LmxClient(LMX, KEY, requests.Session()), store)
    (downloads,) = (source for source in sources if source.name == "downloads")
    running = {"repo_id": "r", "status": "downloading", "progress_percent": 10}
    responses.get(f"{LMX}/admin/models/downloads", json={"downloads": [running]})
    assert downloads.wait() == 60.0  # nothing read yet: idle pace
    assert downloads.read_once()
    assert downloads.wait() == 5.0
    assert [d.repo for d in store.view().state.downloads_running] == ["r"]
    responses.replace(responses.GET, f"{LMX}/admin/models/downloads", json={"downloads": []})
    assert downloads.read_once()
    assert downloads.wait() == 60.0
    assert store.view().state.downloads_running == ()
