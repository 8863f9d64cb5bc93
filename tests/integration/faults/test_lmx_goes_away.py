"""The fault matrix: one test per thing a network, a restarting LMX or a proxy does; each ends
in "the stream goes on" or "a reconnect with backoff, for the right reason", and
`Rig.check()` then proves the invariants (thread alive, no spinning, counters monotonic,
up only after a resync, the admin key nowhere).

Here: the server goes away -- refused connections, a restart with other models, a failed
snapshot -- and counters that never go backwards across every kind of fault.
"""

from __future__ import annotations

from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from tests.integration.faults.faulty_lmx import FaultyLmx
from tests.integration.faults.faulty_rig import BASE, CAP
from tests.integration.faults.faulty_script import (
    Big,
    Cut,
    Raw,
    Reply,
    Script,
    events_script,
    reply,
)
from tests.integration.faults.steps import MB, MakeRig, beat, load, reconnected


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
