"""The fault matrix: one test per thing a network, a restarting LMX or a proxy does; each ends
in "the stream goes on" or "a reconnect with backoff, for the right reason", and
`Rig.check()` then proves the invariants (thread alive, no spinning, counters monotonic,
up only after a resync, the admin key nowhere).

Here: the stream ends -- mid-event, after some events, before any byte, in silence, or
in comments only.
"""

from __future__ import annotations

from tests.integration.faults.faulty_lmx import FaultyLmx
from tests.integration.faults.faulty_rig import BASE, CAP
from tests.integration.faults.faulty_script import (
    AwaitSnapshot,
    Cut,
    Effect,
    Pause,
    Raw,
    Script,
    Stall,
    events_script,
)
from tests.integration.faults.steps import MakeRig, beat, load


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
