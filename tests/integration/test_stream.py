"""The consumer against the real loopback simulator: connect, reconnect, stale, auth, resync."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from lmx_simulator import LmxSimulator
from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter
from opta_exporter.stream.pacer import PAUSE
from tests.conftest import WAIT, Gate, is_open, scrape, value, wait_for

MakeExporter = Callable[..., Exporter]
MakeSim = Callable[..., LmxSimulator]


def test_events_reach_metrics(sim: LmxSimulator, make_exporter: MakeExporter) -> None:
    sim.load_model("before", memory_gb=2.0)
    exporter = make_exporter(sim)
    assert sim.wait_for_subscribers(1, WAIT)
    wait_for(exporter, is_open)
    sim.load_model("mlx-community/Qwen3-8B-4bit", fmt="mlx", memory_gb=4.5)
    sim.publish("model_canary_passed", {"model_id": "mlx-community/Qwen3-8B-4bit"})
    wait_for(exporter, lambda s, h: s.canaries["passed"] == 2)  # the load's own, and this
    wait_for(exporter, lambda s, h: s.loaded.get("before") == "mlx")  # diagnostics' format

    samples = scrape(exporter)
    assert value(samples, "opta_lmx_up") == 1.0
    assert value(samples, "opta_lmx_model_loaded", model="before", format="mlx") == 1.0
    assert (
        value(samples, "opta_lmx_model_loaded", model="mlx-community/Qwen3-8B-4bit", format="mlx")
        == 1.0
    )
    assert (
        value(samples, "opta_lmx_model_memory_bytes", model="mlx-community/Qwen3-8B-4bit")
        == 4.5 * 1024**3
    )
    assert (
        value(
            samples,
            "opta_lmx_model_readiness",
            model="mlx-community/Qwen3-8B-4bit",
            state="routable",
        )
        == 1.0
    )
    assert value(samples, "opta_lmx_model_canaries_total", outcome="passed") == 2.0
    assert value(samples, "opta_lmx_events_total", event="model_readiness_changed") == 4.0
    assert value(samples, "opta_exporter_connection_state", state="open") == 1.0
    assert value(samples, "opta_exporter_resyncs_total", outcome="success") == 1.0
    assert value(samples, "opta_lmx_info", version="0.1.0") == 1.0


def test_request_headers(make_sim: MakeSim, make_exporter: MakeExporter) -> None:
    sim = make_sim(admin_key="k-123")
    exporter = make_exporter(sim, admin_key="k-123")
    wait_for(exporter, is_open)
    events = [h for method, path, h in sim.requests_seen if path.startswith("/admin/events")]
    assert events, "no event-stream request seen"
    headers = {k.lower(): v for k, v in events[0].items()}
    assert headers["accept"] == "text/event-stream"
    assert headers["x-admin-key"] == "k-123"
    assert all("k-123" not in path for _, path, _ in sim.requests_seen)


def test_silent_connect_is_open_at_once(sim: LmxSimulator, make_exporter: MakeExporter) -> None:
    """LMX sends no byte until its first event: the stream is open at the headers."""
    sim.load_model("m", memory_gb=1.0)
    exporter = make_exporter(sim)  # 30 s heartbeat: no byte will come during this test
    wait_for(exporter, is_open)
    # the snapshot says it is loaded, /admin/diagnostics (read on its own) its format
    wait_for(exporter, lambda s, h: s.loaded.get("m") == "mlx")
    samples = scrape(exporter)
    assert value(samples, "opta_lmx_up") == 1.0
    assert value(samples, "opta_lmx_model_loaded", model="m", format="mlx") == 1.0
    assert exporter.store.view().state.events == {}


def test_server_close_reconnects_with_backoff(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    gate = Gate()
    exporter = make_exporter(sim, sleep=gate, backoff_base=0.5, backoff_cap=4.0)
    wait_for(exporter, is_open)
    sim.close_streams()  # closed before any byte: not a healthy connection
    wait_for(exporter, lambda s, h: h.connection_state == "backoff")
    samples = scrape(exporter)
    assert value(samples, "opta_lmx_up") == 0.0
    assert value(samples, "opta_exporter_reconnects_total", reason="eof") == 1.0
    assert value(samples, "opta_exporter_backoff_seconds") == 0.5
    gate.release()
    wait_for(exporter, is_open)
    assert sim.wait_for_subscribers(1, WAIT)
    assert gate.waits == [0.5]
    assert scrape(exporter)[("opta_exporter_backoff_seconds", ())] == 0.0


def resynced(n: int) -> Callable[[LmxState, ExporterHealth], bool]:
    return lambda s, h: h.resyncs["success"] == n


def test_backoff_grows_without_events_and_resets_after_one(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    gate = Gate()
    gate.release()
    exporter = make_exporter(sim, sleep=gate, backoff_base=1.0, backoff_cap=4.0)
    for attempt in range(1, 5):
        wait_for(exporter, resynced(attempt))
        sim.close_streams()
    wait_for(exporter, lambda s, h: h.resyncs["success"] == 5)
    assert gate.waits == [1.0, 2.0, 4.0, 4.0]
    sim.publish("heartbeat", {"timestamp": 1.0})
    wait_for(exporter, lambda s, h: s.events.get("heartbeat") == 1)
    sim.close_streams()
    wait_for(exporter, lambda s, h: h.resyncs["success"] == 6)
    assert gate.waits[-1] == 1.0  # a connection that delivered an event resets the backoff


def test_stale_stream_goes_down_then_recovers(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    gate = Gate()
    exporter = make_exporter(sim, sleep=gate, heartbeat_interval=0.2, stale_timeout=0.5)
    wait_for(exporter, is_open)
    # The simulator's heartbeat is 30 s: nothing arrives within the stale timeout.
    wait_for(exporter, lambda s, h: h.reconnects["stale"] == 1)
    samples = scrape(exporter)
    assert value(samples, "opta_lmx_up") == 0.0
    assert value(samples, "opta_exporter_connection_state", state="backoff") == 1.0
    gate.release()
    wait_for(exporter, lambda s, h: is_open(s, h) and h.reconnects["stale"] == 1)
    sim.publish("heartbeat", {"timestamp": 1.0})
    wait_for(exporter, lambda s, h: s.events.get("heartbeat") == 1)


def test_wrong_key_is_auth_failed_at_the_cap(
    make_sim: MakeSim, make_exporter: MakeExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = make_sim(admin_key="right-key")
    gate = Gate()
    exporter = make_exporter(sim, sleep=gate, admin_key="wrong-key-xyz", backoff_cap=3.0)
    wait_for(exporter, lambda s, h: h.connection_state == "auth_failed")
    samples = scrape(exporter)
    assert value(samples, "opta_exporter_connection_state", state="auth_failed") == 1.0
    assert value(samples, "opta_exporter_reconnects_total", reason="auth") == 1.0
    assert gate.waits == [3.0]
    auth_lines = [r for r in caplog.records if "admin key" in r.getMessage()]
    assert len(auth_lines) >= 1
    assert all("wrong-key-xyz" not in r.getMessage() for r in caplog.records)
    assert "wrong-key-xyz" not in repr(exporter.config)


def test_snapshot_reconciles_events_missed_while_away(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    sim.load_model("stays", memory_gb=1.0)
    sim.load_model("goes", memory_gb=1.0)
    gate = Gate()
    exporter = make_exporter(sim, sleep=gate)
    wait_for(exporter, is_open)
    sim.close_streams()
    wait_for(exporter, lambda s, h: h.connection_state == "backoff")
    sim.unload_model("goes")  # published to nobody: the exporter is away
    sim.load_model("new", memory_gb=2.0)
    gate.release()
    wait_for(exporter, lambda s, h: is_open(s, h) and h.resyncs["success"] == 2)
    samples = scrape(exporter)
    assert value(samples, "opta_lmx_model_loaded", model="goes", format="unknown") is None
    assert value(samples, "opta_lmx_model_loaded", model="new", format="unknown") == 1.0
    assert value(samples, "opta_lmx_model_memory_bytes", model="new") == 2.0 * 1024**3
    assert value(samples, "opta_exporter_state_drift_total") == 2.0


def test_last_event_id_and_retry_are_honoured(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    gate = Gate()
    exporter = make_exporter(sim, sleep=gate, backoff_cap=2.0)  # a floor stays under the cap
    wait_for(exporter, is_open)
    sim.publish_raw(b'id: 42\nretry: 1500\nevent: heartbeat\ndata: {"timestamp": 1}\n\n')
    wait_for(exporter, lambda s, h: s.events.get("heartbeat") == 1)
    sim.close_streams()
    wait_for(exporter, lambda s, h: h.connection_state == "backoff")
    assert gate.waits == [1.5]  # the server's retry: is a floor under the backoff
    gate.release()
    wait_for(exporter, lambda s, h: is_open(s, h) and h.resyncs["success"] == 2)
    events = [h for _, path, h in sim.requests_seen if path.startswith("/admin/events")]
    assert {k.lower(): v for k, v in events[-1].items()}.get("last-event-id") == "42"
    assert "last-event-id" not in {k.lower() for k in events[0]}


def test_a_hostile_retry_is_capped_and_floors_one_wait_only(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    """Before: `retry: 10^12` became a 600 s floor under this and every later reconnect."""
    gate = Gate()
    exporter = make_exporter(sim, sleep=gate, backoff_base=0.05, backoff_cap=2.0)
    wait_for(exporter, is_open)
    sim.publish_raw(b"retry: 1000000000000\n\n")  # a block without data still counts
    sim.publish("heartbeat", {"timestamp": 1.0})
    wait_for(exporter, lambda s, h: s.events.get("heartbeat") == 1)
    sim.close_streams()
    wait_for(exporter, lambda s, h: h.connection_state == "backoff")
    assert gate.waits == [2.0]  # the configured cap, not 600 s
    gate.release()
    wait_for(exporter, lambda s, h: is_open(s, h) and h.resyncs["success"] == 2)
    sim.close_streams()  # no retry: on this connection
    wait_for(exporter, lambda s, h: is_open(s, h) and h.resyncs["success"] == 3)
    assert gate.waits == [2.0, 0.1]  # the second failure's own backoff, no floor left


@pytest.mark.parametrize(
    "bad_id", ["✓".encode(), b"x\x1by", b"\xff"], ids=["check-mark", "escape", "not-utf8"]
)
def test_an_unsendable_id_is_ignored_and_up_comes_back(
    bad_id: bytes,
    sim: LmxSimulator,
    make_exporter: MakeExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: `id: ✓` then a disconnect failed every reconnect while the Last-Event-ID
    header was built (http.client sends Latin-1), and up stayed 0 for good."""
    gate = Gate()
    exporter = make_exporter(sim, sleep=gate)
    wait_for(exporter, is_open)
    sim.publish_raw(b'id: 41\nevent: heartbeat\ndata: {"timestamp": 1}\n\n')
    for n in (2, 3):  # the same bad id twice: counted twice, logged once
        sim.publish_raw(b"id: " + bad_id + b'\nevent: heartbeat\ndata: {"timestamp": %d}\n\n' % n)
    wait_for(exporter, lambda s, h: s.events.get("heartbeat") == 3)
    sim.close_streams()
    wait_for(exporter, lambda s, h: h.connection_state == "backoff")
    gate.release()
    wait_for(exporter, lambda s, h: is_open(s, h) and h.resyncs["success"] == 2)
    samples = scrape(exporter)
    assert value(samples, "opta_lmx_up") == 1.0
    assert value(samples, "opta_exporter_event_errors_total", reason="bad_id") == 2.0
    events = [h for _, path, h in sim.requests_seen if path.startswith("/admin/events")]
    assert {k.lower(): v for k, v in events[-1].items()}.get("last-event-id") == "41"
    logged = [r.getMessage() for r in caplog.records if "bad_id" in r.getMessage()]
    assert len(logged) == 1
    assert "Last-Event-ID" in logged[0]


def test_bad_event_is_counted_and_stream_goes_on(
    sim: LmxSimulator, make_exporter: MakeExporter, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = make_exporter(sim)
    wait_for(exporter, is_open)
    sim.publish_raw(b"event: model_loaded\ndata: {not json\n\n")
    sim.publish_raw(b"event: model_loaded\ndata: {also not json\n\n")
    sim.publish("model_loaded", {"model_id": "ok", "format": "mlx"})
    wait_for(exporter, lambda s, h: "ok" in s.loaded)
    samples = scrape(exporter)
    assert value(samples, "opta_exporter_event_errors_total", reason="malformed_json") == 2.0
    assert [r.getMessage() for r in caplog.records].count(
        next(r.getMessage() for r in caplog.records if "malformed_json" in r.getMessage())
    ) == 1
    assert exporter.store.view().health.reconnects["eof"] == 0


def test_stop_ends_every_thread(sim: LmxSimulator) -> None:
    config = Config(lmx_url=sim.url, listen_host="127.0.0.1", listen_port=0)
    exporter = Exporter(config)
    exporter.start()
    wait_for(exporter, is_open)
    exporter.stop(timeout=2.0)
    assert not any(t.is_alive() for t in exporter._threads)
    assert exporter.store.view().health.connection_state == "stopped"


def _reload(sim: LmxSimulator) -> None:
    sim.publish("config_reloaded", {"routing_aliases": 0, "memory_threshold": 90})


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_a_scrape_reads_what_a_batching_reader_has_left_in_the_socket(
    chunked: bool, make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    """With a 60 s window, only the scrape's flush can bring the third event to /metrics
    within WAIT: the reader pauses after the second, which came right after the first."""
    sim = make_sim(chunked=chunked)
    exporter = make_exporter(sim, batch_window=60.0, heartbeat_interval=3600.0)
    wait_for(exporter, is_open)
    pacer = exporter.consumer.pacer
    assert pacer is not None
    for n in (1.0, 2.0):
        _reload(sim)
        assert _scraped(exporter, n) == n
    assert pacer.wait_for_state(PAUSE, WAIT)  # two reads within the window: batching
    _reload(sim)
    assert _scraped(exporter, 3.0) == 3.0
    assert exporter.store.state.config_reloads == 3.0


def _scraped(exporter: Exporter, want: float) -> float | None:
    """Scrape until the reload count is `want` (the event's bytes may still be in flight
    when a scrape flushes); bounded."""
    seen = None
    for _ in range(1000):
        seen = value(scrape(exporter), "opta_lmx_config_reloads_total")
        if seen == want:
            break
    return seen
