"""No thread dies silently (issue 17): each long-lived thread is fed hostile input by a
real loopback server, counts what it could not take, stays up, and a later good read
lands. The snapshot test fails on the code before: a 100k-deep /admin/status raised
RecursionError in the snapshot thread and ended it, resyncs stopped for good."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from lmx_simulator import LmxSimulator
from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter
from tests.conftest import WAIT, is_open, wait_for
from tests.integration.hostile_lmx import DEEP_ARRAY, HOSTILE_JSON, HUGE, TEXT, HostileLmx

Predicate = Callable[[LmxState, ExporterHealth], bool]
FAST: dict[str, Any] = {
    "snapshot_interval": 0.05,
    "relay_interval": 0.05,
    "health_interval": 0.05,
    "models_interval": 0.05,
    "diagnostics_interval": 0.05,
    "jobs_interval": 0.05,
    "jobs_busy_interval": 0.05,
}
POLLED = {
    "health": "/admin/health",
    "models": "/admin/models",
    "diagnostics": "/admin/diagnostics",
    "downloads": "/admin/models/downloads",
    "quantize": "/admin/quantize",
}
STATUS_HUGE = b'{"version": "0.1.0", "uptime_seconds": ' + HUGE + b', "models": ["m"]}'
STATUS_NAN = (
    b'{"version": "0.1.0", "uptime_seconds": NaN, "models": ["m"], "in_flight_requests": -Infinity}'
)


@pytest.fixture
def hostile() -> Iterator[HostileLmx]:
    with HostileLmx() as server:
        yield server


@pytest.fixture
def exporter(hostile: HostileLmx) -> Iterator[Exporter]:
    config = dataclasses.replace(
        Config(lmx_url=hostile.url, listen_host="127.0.0.1", listen_port=0),
        backoff_base=1.0,
        backoff_cap=2.0,
        **FAST,
    )
    running = Exporter(config)
    running.start()
    yield running
    running.stop()


def errors(thread: str, at_least: float) -> Predicate:
    return lambda state, health: health.thread_errors.get(thread, 0.0) >= at_least


def resyncs_beyond(count: float) -> Predicate:
    return lambda state, health: health.resyncs["success"] > count


def read_since(exporter: Exporter, source: str) -> Predicate:
    mark = exporter.store.view().health.sources[source].last_success_mono or 0.0

    def done(state: LmxState, health: ExporterHealth) -> bool:
        last = health.sources[source].last_success_mono
        return last is not None and last > mark

    return done


def ready(exporter: Exporter) -> requests.Response:
    return requests.get(exporter.url + "/-/ready", timeout=WAIT)


def all_up(health: ExporterHealth) -> bool:
    return bool(health.threads) and all(health.threads.values())


@pytest.mark.parametrize(
    "body",
    [DEEP_ARRAY, HOSTILE_JSON["deep object"], STATUS_HUGE, STATUS_NAN, b"[1, 2]"],
    ids=["deep-array", "deep-object", "huge-number", "nan", "non-object"],
)
def test_the_snapshot_thread_survives_a_hostile_status(
    hostile: HostileLmx, exporter: Exporter, body: bytes
) -> None:
    wait_for(exporter, resyncs_beyond(0))
    hostile.set("/admin/status", body)
    assert hostile.wait_served("/admin/status", 3, WAIT)  # a few intervals of it
    done = exporter.store.view().health.resyncs["success"]

    hostile.restore("/admin/status")
    wait_for(exporter, resyncs_beyond(done))  # the thread still reads: a resync lands
    health = exporter.store.view().health
    assert health.threads["snapshots"]
    assert health.sources["status"].up
    # LMX here has no event stream (404), so not ready for that reason alone, not a thread's
    assert ready(exporter).text.startswith("not ready: event stream not open")


def failures_beyond(count: float) -> Predicate:
    return lambda state, health: health.resyncs["failure"] > count


def test_a_body_the_decoder_cannot_take_is_a_failed_read_said_once(
    hostile: HostileLmx, exporter: Exporter, caplog: pytest.LogCaptureFixture
) -> None:
    """100k nested brackets: LMX's client refuses the body before decoding it (the
    decoder would fail 1,000 levels down), the read fails like any bad answer (source
    down, one line), and the thread has no error."""
    wait_for(exporter, resyncs_beyond(0))
    failed = exporter.store.view().health.resyncs["failure"]
    hostile.set("/admin/status", DEEP_ARRAY)
    wait_for(exporter, failures_beyond(failed + 2))
    said = [r.getMessage() for r in caplog.records if "nests too deeply" in r.getMessage()]
    assert len(said) == 1, said  # once per spell
    health = exporter.store.view().health
    assert not health.sources["status"].up
    assert health.thread_errors["snapshots"] == 0
    assert health.threads["snapshots"]

    hostile.restore("/admin/status")
    wait_for(exporter, read_since(exporter, "status"))


def test_an_unexpected_error_in_a_thread_is_counted_and_said_once(
    hostile: HostileLmx,
    exporter: Exporter,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault no input should cause (a bug): the thread counts it, says it once without
    a traceback at warning level, and goes on reading once it passes."""
    wait_for(exporter, resyncs_beyond(0))

    def broken(status: object, memory: object) -> None:
        raise RuntimeError("a bug in the parser")

    monkeypatch.setattr("opta_exporter.readers.snapshots.parse_snapshot", broken)
    wait_for(exporter, errors("snapshots", 3))
    said = [r for r in caplog.records if "thread snapshots" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]  # once per spell, no traceback
    assert "RuntimeError" in said[0].getMessage()
    assert said[0].exc_info is None
    monkeypatch.undo()

    hostile.restore("/admin/status")
    wait_for(exporter, read_since(exporter, "status"))
    scraped = requests.get(exporter.url + "/metrics", timeout=WAIT).text
    assert 'opta_exporter_thread_up{thread="snapshots"} 1.0' in scraped
    assert 'opta_exporter_thread_errors_total{thread="snapshots"}' in scraped


@pytest.mark.parametrize(
    "body",
    [*HOSTILE_JSON.values(), b'{"memory_usage_percent": ' + HUGE + b', "loaded": NaN}'],
    ids=[*HOSTILE_JSON, "huge-and-nan"],
)
def test_every_polled_source_survives_hostile_bodies(
    hostile: HostileLmx, exporter: Exporter, body: bytes
) -> None:
    for source in POLLED:
        wait_for(exporter, read_since(exporter, source))
    for path in POLLED.values():
        hostile.set(path, body)
    for path in POLLED.values():
        assert hostile.wait_served(path, 2, WAIT)
    marks = {source: read_since(exporter, source) for source in POLLED}
    for path in POLLED.values():
        hostile.restore(path)
    for since in marks.values():
        wait_for(exporter, since)  # a later good read of each lands
    assert all_up(exporter.store.view().health)


def test_deep_json_from_a_polled_source_is_a_failed_read(
    hostile: HostileLmx, exporter: Exporter
) -> None:
    wait_for(exporter, read_since(exporter, "health"))
    hostile.set("/admin/health", DEEP_ARRAY)
    assert hostile.wait_served("/admin/health", 3, WAIT)
    health = exporter.store.view().health
    assert not health.sources["health"].up  # a failed read, not a crash
    assert health.thread_errors["health"] == 0
    assert health.threads["health"]
    hostile.restore("/admin/health")
    wait_for(exporter, read_since(exporter, "health"))


@pytest.mark.parametrize(
    "body",
    [
        b"lmx_uptime_seconds 1e999999\nlmx_x NaN\nlmx_y " + HUGE + b"\n",
        DEEP_ARRAY,
        b"\x00\xff\xfe" * 10_000,
        b"".join(b'lmx_series{i="%d"} 1\n' % i for i in range(30_000)),
    ],
    ids=["huge-and-nan", "deep", "binary", "30k-series"],
)
def test_the_relay_thread_survives_hostile_bodies(
    hostile: HostileLmx, exporter: Exporter, body: bytes
) -> None:
    relay = exporter.relay
    assert relay is not None
    assert relay.wait_for_reads(1, WAIT)
    hostile.set("/admin/metrics", body, TEXT)
    assert hostile.wait_served("/admin/metrics", 2, WAIT)
    hostile.restore("/admin/metrics")
    done = sum(relay.view().reads.values())
    assert relay.wait_for_reads(done + 2, WAIT)  # one read began after the restore
    assert "lmx_completion_tokens_total" in relay.view().families
    assert exporter.store.view().health.threads["relay"]


def test_the_stream_thread_survives_hostile_events(
    sim: LmxSimulator,
) -> None:
    config = Config(lmx_url=sim.url, listen_host="127.0.0.1", listen_port=0)
    exporter = Exporter(config)
    exporter.start()
    try:
        wait_for(exporter, is_open)
        for data in (
            DEEP_ARRAY,
            HOSTILE_JSON["deep object"],
            b"[1]",
            b'{"model_id": "m", "memory_gb": ' + HUGE + b"}",
            b'{"model_id": "m", "duration_sec": NaN}',
        ):
            sim.publish_raw(b"event: model_loaded\ndata: " + data + b"\n\n")
        sim.publish("model_loaded", {"model_id": "after/the-storm", "format": "mlx"})
        wait_for(exporter, lambda state, health: "after/the-storm" in state.loaded)
        health = exporter.store.view().health
        assert health.threads["stream"]
        assert health.connection_state == "open"
        assert health.thread_errors["stream"] == 0  # the stream's reader counts these itself
        assert exporter.store.view().state.event_errors["malformed_json"] >= 2
    finally:
        exporter.stop()
