"""The fault matrix: one test per thing a network, a restarting LMX or a proxy does; each ends
in "the stream goes on" or "a reconnect with backoff, for the right reason", and
`Rig.check()` then proves the invariants (thread alive, no spinning, counters monotonic,
up only after a resync, the admin key nowhere).

Here: bytes that are odd but legal -- trickled, close-delimited, CR or CRLF line ends, a
BOM, comments, `retry:` and `id:` fields.
"""

from __future__ import annotations

import pytest

from tests.integration.faults.faulty_lmx import FaultyLmx
from tests.integration.faults.faulty_rig import CAP
from tests.integration.faults.faulty_script import Hold, Raw, events_script
from tests.integration.faults.steps import MakeRig, beat, load


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
    rig = make_rig(backoff_cap=2.0)  # a floor never exceeds the cap
    rig.wait_open(resyncs=2)
    assert rig.gate.waits == [1.5]
    rig.check()


def test_retry_field_is_bounded(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    """A hostile `retry:` must not park the daemon for a month: the cap bounds it."""
    lmx.push(events_script(beat(), Raw(b"retry: 2592000000\n\n")))
    rig = make_rig()
    rig.wait_open(resyncs=2)
    assert rig.gate.waits == [CAP]
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
