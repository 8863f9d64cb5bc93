"""The fault matrix: one test per thing a network, a restarting LMX or a proxy does.

Each fault ends in "the stream goes on" or "a reconnect with backoff, for the right
reason"; `Rig.check()` then proves the invariants (thread alive, no spinning, counters
monotonic, up only after a resync, the admin key nowhere).
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.stream import backoff
from tests.conftest import WAIT, Gate
from tests.helpers import promtool_check
from tests.integration.faults.faulty_lmx import FaultyLmx
from tests.integration.faults.faulty_rig import KEY, Rig, parse, start_rig
from tests.integration.faults.faulty_script import (
    AwaitSnapshot,
    Big,
    Cut,
    Effect,
    Hold,
    Pause,
    Raw,
    Reply,
    Script,
    Send,
    Stall,
    events_script,
    reply,
)

MakeRig = Callable[..., Rig]
BASE, CAP = 0.05, 0.4  # the rig's backoff
MB = 1 << 20


def load(model: str, *, gb: float = 1.0, trickle: bool = False, eol: bytes = b"\n") -> Send:
    data: dict[str, object] = {"model_id": model, "format": "mlx", "memory_gb": gb}
    return Send("model_loaded", data, Effect("load", model, gb), trickle=trickle, eol=eol)


def beat(*, trickle: bool = False, eol: bytes = b"\n") -> Send:
    return Send("heartbeat", {"timestamp": 1.0}, trickle=trickle, eol=eol)


@pytest.fixture
def lmx() -> Iterator[FaultyLmx]:
    with FaultyLmx(admin_key=KEY, models={"keep": 1.0}) as server:
        yield server


@pytest.fixture
def make_rig(lmx: FaultyLmx, caplog: pytest.LogCaptureFixture) -> Iterator[MakeRig]:
    rigs: list[Rig] = []

    def make(*, hold: bool = False, **overrides: object) -> Rig:
        """`hold=True` keeps the consumer in its first backoff until `rig.gate.release()`."""
        gate = Gate()
        if not hold:
            gate.release()
        rig = start_rig(lmx, caplog, gate, **overrides)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.gate.release()
        rig.exporter.stop()


def reconnected(reason: str, n: int = 1) -> Callable[..., bool]:
    return lambda s, h: h.reconnects[reason] >= n


# -- the stream ends ----------------------------------------------------------------------
def test_close_mid_event(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    lmx.push(events_script(load("a"), Cut(load("half"))))
    rig = make_rig()
    rig.wait_open(resyncs=2)
    assert rig.health.reconnects["eof"] == 1
    assert rig.gate.waits == [BASE]  # the connection delivered an event: backoff reset
    assert lmx.records[0].ending == "cut"
    assert lmx.records[0].lost == [Effect("load", "half")]
    assert rig.value("opta_lmx_events_total", event="model_loaded") == 1.0
    # the half event never landed; the snapshot after the reconnect found the model
    assert rig.value("opta_lmx_model_loaded", model="half", format="unknown") == 1.0
    assert rig.value("opta_exporter_state_drift_total") == 1.0
    rig.check()


def test_close_after_n_events(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    lmx.push(events_script(*[beat() for _ in range(5)], load("m")))
    rig = make_rig()
    rig.wait_open(resyncs=2)
    assert lmx.records[0].stayed_open
    assert len(lmx.records[0].sent) == 6
    assert rig.value("opta_lmx_events_total", event="heartbeat") == 5.0
    assert rig.value("opta_exporter_reconnects_total", reason="eof") == 1.0
    assert rig.value("opta_lmx_model_loaded", model="m", format="mlx") == 1.0
    assert rig.gate.waits == [BASE]
    rig.check()


def test_close_before_any_byte_keeps_backing_off(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    lmx.push(*[events_script() for _ in range(5)])
    rig = make_rig()
    rig.wait_open(resyncs=6)
    assert rig.gate.waits == [BASE, 2 * BASE, 4 * BASE, CAP, CAP]  # never reset: no event
    assert rig.health.reconnects["eof"] == 5
    hints = [line for line in rig.log_lines() if "subscriber limit" in line]
    assert len(hints) == 1
    rig.check()


def test_stall_without_heartbeat_goes_stale(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    lmx.push(Script([AwaitSnapshot(), beat(), Stall()]))
    rig = make_rig(hold=True, stale_timeout=0.3)
    rig.wait(lambda s, h: h.connection_state == "backoff", "backoff")
    assert rig.value("opta_lmx_up") == 0.0
    assert rig.value("opta_exporter_reconnects_total", reason="stale") == 1.0
    assert lmx.wait(lmx.records[0].done.is_set, 5.0)
    assert lmx.records[0].ending == "client_closed"  # the exporter hung up, not LMX
    rig.gate.release()
    rig.wait_open(resyncs=2)
    assert rig.gate.waits == [BASE]
    rig.check()


def test_comment_only_stream_goes_stale(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    """Bytes keep coming but no event does: as dead as silence (LMX sends heartbeats)."""
    pings: list[Raw | Pause] = [Raw(b": ping\n\n"), Pause(0.05)]
    lmx.push(Script([AwaitSnapshot(), beat(), *(pings * 60)]))
    rig = make_rig(hold=True, stale_timeout=0.4)
    rig.wait(lambda s, h: h.connection_state == "backoff", "the end of the first stream")
    assert rig.health.reconnects["stale"] == 1
    assert lmx.wait(lmx.records[0].done.is_set, 5.0)
    assert lmx.records[0].ending == "client_closed", "the exporter must hang up"
    rig.gate.release()
    rig.wait_open(resyncs=2)
    rig.check()


# -- bytes that are odd but legal --------------------------------------------------------
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_trickle_bytes_one_at_a_time(lmx: FaultyLmx, make_rig: MakeRig, chunked: bool) -> None:
    lmx.push(events_script(load("t", trickle=True), beat(trickle=True), Hold(), chunked=chunked))
    rig = make_rig()
    rig.wait(lambda s, h: s.events.get("heartbeat") == 1, "the trickled events")
    assert rig.value("opta_lmx_model_loaded", model="t", format="mlx") == 1.0
    assert sum(rig.health.reconnects.values()) == 0
    assert sum(rig.state.event_errors.values()) == 0
    rig.check()


def test_close_delimited_stream_stops_at_once(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    """No chunked framing (an HTTP/1.0 proxy): stop() must still cut the blocked read,
    not wait for the read timeout."""
    lmx.push(events_script(beat(), Hold(), chunked=False))
    rig = make_rig(stale_timeout=30.0)
    rig.wait(lambda s, h: s.events.get("heartbeat") == 1, "the event")
    rig.check()
    rig.exporter.stop(timeout=2.0)
    assert rig.consumer is not None
    assert not rig.consumer.is_alive(), "the consumer still blocks in a read"
    assert rig.health.connection_state == "stopped"


def check_line_endings(lmx: FaultyLmx, make_rig: MakeRig, eol: bytes) -> None:
    """Whole, and trickled so a CR and its LF arrive in different reads."""
    whole, split = load("a", eol=eol), load("b", eol=eol, trickle=True)
    lmx.push(events_script(whole, split, beat(eol=eol), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: s.events.get("heartbeat") == 1, "all events")
    assert rig.state.events == {"model_loaded": 2.0, "heartbeat": 1.0}  # none split in two
    assert rig.value("opta_lmx_model_loaded", model="b", format="mlx") == 1.0
    assert sum(rig.state.event_errors.values()) == 0
    rig.check()


def test_cr_only_line_endings(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    check_line_endings(lmx, make_rig, b"\r")


def test_crlf_line_endings(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    check_line_endings(lmx, make_rig, b"\r\n")


def test_utf8_bom_is_stripped(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    lmx.push(events_script(Raw(b"\xef\xbb\xbf" + load("b").frame), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "b" in s.loaded, "the event after the BOM")
    assert rig.state.events == {"model_loaded": 1.0}
    assert sum(rig.state.event_errors.values()) == 0
    rig.check()


def test_comment_lines_are_ignored(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    mixed = b': keep-alive\nevent: heartbeat\n: between\ndata: {"timestamp": 1}\n\n'
    lmx.push(events_script(Raw(b": ping\n\n"), Raw(mixed), Raw(b":\n\n"), load("c"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "c" in s.loaded, "the event after the comments")
    assert rig.state.events == {"heartbeat": 1.0, "model_loaded": 1.0}
    assert sum(rig.state.event_errors.values()) == 0
    rig.check()


def test_retry_field_sets_the_backoff_floor(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    """A `retry:` alone in a block (no data) still counts, as in EventSource."""
    lmx.push(events_script(beat(), Raw(b"retry: 1500\n\n")))
    rig = make_rig()
    rig.wait_open(resyncs=2)
    assert rig.gate.waits == [1.5]
    rig.check()


def test_retry_field_is_bounded(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    """A hostile `retry:` must not park the daemon for a month."""
    lmx.push(events_script(beat(), Raw(b"retry: 2592000000\n\n")))
    rig = make_rig()
    rig.wait_open(resyncs=2)
    assert CAP <= rig.gate.waits[0] <= backoff.MAX_SERVER_WAIT
    rig.check()


def test_id_field_is_sent_back_as_last_event_id(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    with_id = b'id: 7\nevent: heartbeat\ndata: {"timestamp": 1}\n\n'
    lmx.push(events_script(Raw(with_id), Raw(b"id: 8\n\n")), events_script(beat()))
    rig = make_rig()
    rig.wait_open(resyncs=3)
    assert "last-event-id" not in lmx.records[0].headers
    assert lmx.records[1].headers.get("last-event-id") == "8"  # an id-only block counts
    assert lmx.records[2].headers.get("last-event-id") == "8"  # kept across reconnects
    rig.check()


# -- bad input: counted, never fatal ------------------------------------------------------
def test_empty_data_is_malformed_not_fatal(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    empty = Raw(b"event: model_loaded\ndata:\n\n")
    lmx.push(events_script(empty, Raw(b"event: model_loaded\ndata\n\n"), load("ok"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "ok" in s.loaded, "the good event")
    assert rig.value("opta_exporter_event_errors_total", reason="malformed_json") == 2.0
    assert sum(rig.health.reconnects.values()) == 0
    rig.check()


def test_invalid_utf8_is_counted_not_fatal(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    bad_data = Raw(b'event: model_loaded\ndata: {"model_id": "\xff\xfe"}\n\n')
    bad_name = Raw(b'event: \xff\xfeloaded\ndata: {"model_id": "x"}\n\n')
    lmx.push(events_script(bad_data, bad_name, load("ok"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "ok" in s.loaded, "the good event")
    assert rig.value("opta_exporter_event_errors_total", reason="malformed_json") == 1.0
    assert rig.value("opta_lmx_events_total", event="other") == 1.0  # the mangled name
    assert set(rig.state.loaded) == {"keep", "ok"}
    rig.check()


def test_10mb_event_line_is_dropped_and_the_stream_resyncs(
    lmx: FaultyLmx, make_rig: MakeRig
) -> None:
    lmx.push(events_script(Hold(), Big(10 * MB), load("after"), Hold()))
    rig = make_rig()
    rig.wait_open()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        lmx.release()
        rig.wait(lambda s, h: "after" in s.loaded, "the event after the big one")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MB, f"held {peak / MB:.1f} MiB for one event"
    assert rig.value("opta_exporter_event_errors_total", reason="oversize") == 1.0
    assert sum(rig.health.reconnects.values()) == 0  # resynced at the boundary
    assert rig.state.events == {"model_loaded": 1.0}
    rig.check()


def test_nan_inf_and_negative_durations_are_refused(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    values = [b"NaN", b"Infinity", b"-Infinity", b"-1.5", b"1e999"]
    frames = [
        Raw(b'event: model_loaded\ndata: {"model_id": "d%d", "duration_sec": %s}\n\n' % (i, v))
        for i, v in enumerate(values)
    ]
    canary = b'event: model_canary_passed\ndata: {"model_id": "k", "duration_sec": NaN}\n\n'
    lmx.push(events_script(*frames, Raw(canary), load("ok"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "ok" in s.loaded, "the good event")
    samples = rig.scrape()
    assert samples[("opta_exporter_event_errors_total", (("reason", "bad_field"),))] == 6.0
    hist = {k: v for k, v in samples.items() if "_seconds_" in k[0] and k[0].startswith("opta_")}
    assert all(0.0 <= v < math.inf for v in hist.values()), hist  # NaN fails this too
    assert set(rig.state.loaded) == {"keep", "ok"}  # a refused event changes nothing
    rig.check()


ODD_IDS = [
    'we"ird',
    "back\\slash",
    "new\nline",
    "emoji-\U0001f980-\u00e9",
    'all "of\\ them\n\U0001f680',
    "x" * 256,
]


def test_odd_label_values_are_escaped_or_refused(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    huge = "y" * 10_000
    lmx.push(events_script(*[load(m) for m in [*ODD_IDS, huge]], beat(), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: s.events.get("heartbeat") == 1, "all events")
    rig.scrape()
    text = rig.texts[-1]
    models = {
        dict(labels)["model"]
        for (name, labels), _ in parse(text).items()
        if name == "opta_lmx_model_loaded"
    }
    assert models == {"keep", *ODD_IDS}  # round-trips through the parser: escaped right
    assert huge not in text
    dropped = rig.value("opta_exporter_series_dropped_total", metric="opta_lmx_model_loaded")
    assert dropped == 1.0
    promtool_check(text)
    openmetrics = requests.get(
        rig.exporter.url + "/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        timeout=WAIT,
    ).text
    loaded = {
        sample.labels["model"]
        for family in om_parse(openmetrics)  # type: ignore[no-untyped-call]
        if family.name == "opta_lmx_model_loaded"
        for sample in family.samples
    }
    assert loaded == models  # the format Prometheus negotiates escapes the same way
    rig.check()


def test_lone_surrogate_in_a_label_does_not_break_the_scrape(
    lmx: FaultyLmx, make_rig: MakeRig
) -> None:
    surrogate = Raw(b'event: model_loaded\ndata: {"model_id": "a\\ud800b"}\n\n')
    lmx.push(events_script(surrogate, load("ok"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "ok" in s.loaded, "the good event")
    assert rig.value("opta_exporter_event_errors_total", reason="bad_field") == 1.0


def test_lone_surrogate_in_a_snapshot_does_not_break_the_scrape(
    lmx: FaultyLmx, make_rig: MakeRig
) -> None:
    lmx.set_models({"keep": 1.0, "a\ud800b": 1.0})
    rig = make_rig()
    rig.wait_open()
    rig.check()


# -- HTTP answers that are not a stream ---------------------------------------------------
def check_auth_refused(lmx: FaultyLmx, make_rig: MakeRig, status: int) -> None:
    """Credentials, not a transient fault: wait the cap, say so once, as a warning."""
    lmx.push(reply(status), reply(status))
    rig = make_rig()
    rig.wait_open()
    assert rig.gate.waits == [CAP, CAP]
    states = [t.state for t in rig.transitions][:4]
    assert states == ["connecting", "auth_failed", "connecting", "auth_failed"]
    assert rig.value("opta_exporter_reconnects_total", reason="auth") == 2.0
    warnings = rig.said(f"HTTP {status}")
    assert [r.levelno for r in warnings] == [logging.WARNING], "said once, as a warning"
    assert "admin key" in warnings[0].getMessage()
    rig.check()


def test_401_is_auth_failed_at_the_cap(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    check_auth_refused(lmx, make_rig, 401)


def test_403_is_auth_failed_at_the_cap(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    check_auth_refused(lmx, make_rig, 403)


def test_rotated_admin_key_is_auth_and_never_logged(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    lmx.admin_key = "rotated-key-123"
    rig = make_rig(hold=True)
    rig.wait(lambda s, h: h.connection_state == "auth_failed", "auth_failed")
    assert rig.value("opta_exporter_connection_state", state="auth_failed") == 1.0
    lmx.admin_key = KEY
    rig.gate.release()
    rig.wait_open()
    assert all("rotated-key-123" not in line for line in rig.log_lines())
    rig.check()


def check_backs_off(lmx: FaultyLmx, make_rig: MakeRig, status: int) -> None:
    """Four refusals in a row: the waits double up to the cap, logged once."""
    lmx.push(*[reply(status) for _ in range(4)])
    rig = make_rig()
    rig.wait_open()
    assert rig.gate.waits == [BASE, 2 * BASE, 4 * BASE, CAP]
    assert rig.value("opta_exporter_reconnects_total", reason="http_error") == 4.0
    assert len(rig.said(f"http_error: HTTP {status}")) == 1, "said once per change"
    rig.check()


def test_404_events_disabled_backs_off(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    check_backs_off(lmx, make_rig, 404)


def test_500_backs_off(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    check_backs_off(lmx, make_rig, 500)


def test_502_backs_off(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    check_backs_off(lmx, make_rig, 502)


def check_retry_after(lmx: FaultyLmx, make_rig: MakeRig, status: int) -> None:
    lmx.push(reply(status, ("Retry-After", "2")), reply(status, ("Retry-After", "1")))
    rig = make_rig()
    rig.wait_open()
    assert rig.gate.waits == [2.0, 1.0]  # at least Retry-After, over the 0.05 s backoff
    assert rig.value("opta_exporter_reconnects_total", reason="http_error") == 2.0
    rig.check()


def test_429_retry_after_is_waited(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    check_retry_after(lmx, make_rig, 429)


def test_503_retry_after_is_waited(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    check_retry_after(lmx, make_rig, 503)


def test_503_retry_after_http_date_is_waited(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    lmx.push(reply(503, ("Retry-After", when)))
    rig = make_rig()
    rig.wait_open()
    assert 28.0 <= rig.gate.waits[0] <= 30.0
    rig.check()


def test_retry_after_is_bounded(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    lmx.push(reply(429, ("Retry-After", "99999999")))
    rig = make_rig()
    rig.wait_open()
    assert rig.gate.waits == [backoff.MAX_SERVER_WAIT]
    rig.check()


def test_html_login_page_is_a_protocol_reconnect(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    page = Reply(200, body=b"<html><form>Sign in</form></html>", content_type="text/html")
    lmx.push(Script(reply=page), Script([beat()], content_type=None))
    rig = make_rig()
    rig.wait_open()
    assert rig.value("opta_exporter_reconnects_total", reason="protocol") == 2.0
    lines = [line for line in rig.log_lines() if "protocol" in line]
    assert "expected text/event-stream, got 'text/html'" in lines[0]
    assert rig.gate.waits == [BASE, 2 * BASE]
    assert rig.state.events == {}  # nothing from a non-stream body was ingested
    rig.check()


def test_redirect_to_a_login_page_does_not_carry_the_key(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    with FaultyLmx() as portal:
        lmx.push(reply(302, ("Location", portal.url + "/login")))
        rig = make_rig()
        rig.wait_open()
        assert all(h.get("x-admin-key") is None for _, _, h in portal.requests)
        assert not portal.requests, "a redirect is not followed"
    assert rig.value("opta_exporter_reconnects_total", reason="http_error") == 1.0
    rig.check()


def test_snapshot_redirect_does_not_carry_the_key(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    with FaultyLmx() as portal:
        lmx.snapshot_status = 302
        lmx.snapshot_headers = (("Location", portal.url + "/login"),)
        rig = make_rig()
        rig.wait(lambda s, h: h.resyncs["failure"] + h.resyncs["success"] >= 1, "a resync")
        lmx.snapshot_status, lmx.snapshot_headers = 200, ()
        rig.wait_open()
        assert all(h.get("x-admin-key") is None for _, _, h in portal.requests)
    rig.check()


def test_garbage_gzip_body_is_not_fatal(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    """Compressed though the exporter asked for identity, and not even valid gzip: once,
    this killed the consumer thread (urllib3's DecodeError was not caught)."""
    gzip = (("Content-Encoding", "gzip"),)
    lmx.push(Script([AwaitSnapshot(), Raw(b"\x1f\x8b\x08not gzip at all")], headers=gzip))
    lmx.push(events_script(load("later"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "later" in s.loaded, "the next connection")
    assert rig.health.reconnects["protocol"] == 1
    assert rig.said("protocol: undecodable body")
    assert lmx.records[0].headers.get("accept-encoding") == "identity"
    rig.check()


# -- the server goes away -----------------------------------------------------------------
def test_refused_connections_back_off_then_recover(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.wait_open()
    lmx.down()
    rig.wait(reconnected("connect_error", 4), "refused connections")
    lmx.up()
    rig.wait_open(resyncs=2)
    waits = rig.gate.waits
    assert waits[:4] == [BASE, 2 * BASE, 4 * BASE, CAP]
    assert set(waits[4:]) <= {CAP}
    assert rig.health.reconnects["eof"] == 1  # the cut stream, then refusals
    assert len(rig.said("connect_error: cannot connect")) == 1, "said once per change"
    rig.check()


def test_restart_with_a_different_model_set_resyncs_before_up(
    lmx: FaultyLmx, make_rig: MakeRig
) -> None:
    lmx.set_models({"keep": 1.0, "gone": 2.0})
    rig = make_rig(hold=True)
    rig.wait_open()
    lmx.restart(models={"keep": 1.0, "new": 3.0})
    rig.wait(lambda s, h: h.connection_state == "backoff", "the consumer held in backoff")
    assert rig.value("opta_lmx_up") == 0.0
    seen: list[frozenset[str]] = []

    def first_open(state: LmxState, health: ExporterHealth) -> bool:
        if health.connection_state == "open":
            seen.append(frozenset(state.loaded))
            return True
        return False

    rig.gate.release()
    rig.wait(first_open, "open again")
    assert seen[0] == {"keep", "new"}  # the first open state already has the snapshot
    opened = [t for t in rig.transitions if t.state == "open"]
    assert [t.models for t in opened] == [{"keep", "gone"}, {"keep", "new"}]
    assert rig.value("opta_exporter_resyncs_total", outcome="success") == 2.0
    assert rig.value("opta_exporter_state_drift_total") == 2.0
    assert rig.value("opta_lmx_model_loaded", model="gone", format="unknown") is None
    rig.check()


def test_failed_snapshot_keeps_lmx_down(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    """A failed resync must not let `up` return to 1 on stale models."""
    rig = make_rig()
    rig.wait_open()
    lmx.snapshot_status = 500
    lmx.set_models({"new": 1.0})
    lmx.release()
    rig.wait(lambda s, h: h.resyncs["failure"] >= 2, "failed resyncs")
    assert [t for t in rig.transitions if t.state == "open"] == rig.transitions[1:2]
    assert rig.health.reconnects["http_error"] >= 1
    assert rig.said("http_error: no snapshot after connecting")
    assert rig.said("snapshot failed: /admin/status: HTTP 500")
    lmx.snapshot_status = 200
    rig.wait(lambda s, h: h.connection_state == "open" and "new" in s.loaded, "recovered")
    rig.check()


# -- across everything --------------------------------------------------------------------
def test_counters_never_go_backwards_across_faults(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    lmx.push(
        events_script(load("a"), beat(), Cut(load("b"))),
        reply(503, ("Retry-After", "1")),
        events_script(Big(2 * MB), load("c"), Raw(b"event: x\ndata: [1]\n\n")),
        Script(reply=Reply(200, content_type="text/html")),
        events_script(Raw(b"\xef\xbb\xbf" + beat().frame), load("d", eol=b"\r")),
    )
    rig = make_rig()
    for n in range(1, 5):
        rig.wait_resyncs(n)
        rig.scrape()  # Rig.scrape compares every counter with the previous scrape
    rig.wait_open(resyncs=4)
    lmx.restart()
    rig.wait_open(resyncs=5)
    rig.check()
    assert len(rig.texts) >= 5
