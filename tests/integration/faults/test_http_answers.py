"""The fault matrix: one test per thing a network, a restarting LMX or a proxy does; each ends
in "the stream goes on" or "a reconnect with backoff, for the right reason", and
`Rig.check()` then proves the invariants (thread alive, no spinning, counters monotonic,
up only after a resync, the admin key nowhere).

Here: HTTP answers that are not a stream -- 401/403, a rotated key, 404/5xx, Retry-After,
an HTML login page, redirects that must not carry the key, a garbage gzip body.
"""

from __future__ import annotations

import email.utils
import logging
import time

from tests.integration.faults.faulty_lmx import FaultyLmx
from tests.integration.faults.faulty_rig import BASE, CAP, KEY
from tests.integration.faults.faulty_script import (
    AwaitSnapshot,
    Hold,
    Raw,
    Reply,
    Script,
    events_script,
    reply,
)
from tests.integration.faults.steps import MakeRig, beat, load


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
    rig = make_rig(backoff_cap=3.0)  # a floor never exceeds the cap
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
    rig = make_rig(backoff_cap=60.0)
    rig.wait_open()
    assert 28.0 <= rig.gate.waits[0] <= 30.0
    rig.check()


def test_retry_after_is_bounded(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    lmx.push(reply(429, ("Retry-After", "99999999")))
    rig = make_rig()
    rig.wait_open()
    assert rig.gate.waits == [CAP]  # the cap, not 99999999 s
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
