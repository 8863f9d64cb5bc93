"""The LMX stand-in against real sockets: the admin HTTP side (lmx_simulator/httpserver.py) --
the SSE response's headers and silent connect, one chunk per frame, heartbeats when idle,
the key check, methods and paths, close-delimited mode."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.unit.lmx_simulator.harness import Harness, event


def test_events_headers_then_silence_until_first_event(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert c.status == 200
    assert c.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert c.headers["transfer-encoding"] == "chunked"
    assert c.headers["cache-control"] == "no-cache"
    assert re.fullmatch(r"[0-9a-f]{32}", c.headers["x-request-id"])
    assert "content-length" not in c.headers
    assert sim.wait_for_subscribers(1)
    c.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        c.read_exact(1)
    c.sock.settimeout(3.0)
    sim.publish("model_loaded", {"model_id": "m", "note": "é"})
    assert c.read_chunk() == b'event: model_loaded\ndata: {"model_id": "m", "note": "\\u00e9"}\n\n'


def test_a_client_that_hangs_up_frees_its_slot_at_once(h: Harness) -> None:
    sim = h.sim(max_subscribers=2)
    h.client(sim).close()
    assert sim.wait_for(lambda: sim.connections_total == 1 and sim.subscriber_count() == 0)
    assert h.client(sim).status == 200
    assert sim.wait_for_subscribers(1)  # the only outside slot was free again


def test_one_chunk_per_frame_named_or_raw(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.publish("config_reloaded", {"log_level": "INFO"})
    sim.publish_raw(b"data: not json\n\n")
    assert c.read_chunk() == b'event: config_reloaded\ndata: {"log_level": "INFO"}\n\n'
    assert c.read_chunk() == b"data: not json\n\n"
    assert sim.events_published == 2


def test_heartbeat_only_after_an_idle_interval(h: Harness) -> None:
    sim = h.sim(heartbeat_interval=0.3)
    c = h.client(sim)
    name, data = event(c.read_chunk())
    assert name == "heartbeat"
    assert abs(float(data["timestamp"]) - time.time()) < 5
    sim.publish("config_reloaded", {})
    assert event(c.read_chunk())[0] == "config_reloaded"
    after_event = time.monotonic()
    assert event(c.read_chunk())[0] == "heartbeat"
    assert time.monotonic() - after_event >= 0.25  # the idle timer restarted on the event


def test_noisy_connect_sends_a_heartbeat_at_once(h: Harness) -> None:
    sim = h.sim(silent_connect=False)
    c = h.client(sim)
    c.sock.settimeout(1.0)
    assert event(c.read_chunk())[0] == "heartbeat"


def test_admin_key_header_and_events_only_query_form(h: Harness) -> None:
    sim = h.sim(admin_key="s3cret")
    for path in ("/admin/status", "/admin/memory", "/admin/metrics"):
        assert requests.get(sim.url + path, timeout=3).status_code == 403
        wrong = requests.get(sim.url + path, headers={"X-Admin-Key": "nope"}, timeout=3)
        assert (wrong.status_code, wrong.json()) == (
            403,
            {"detail": "Invalid or missing admin key"},
        )
        good = requests.get(sim.url + path, headers={"X-Admin-Key": "s3cret"}, timeout=3)
        assert good.status_code == 200
        assert requests.get(f"{sim.url}{path}?admin_key=s3cret", timeout=3).status_code == 403
    assert h.client(sim, headers={"X-Admin-Key": "s3cret", "Last-Event-ID": "7"}).status == 200
    assert h.client(sim, "/admin/events?admin_key=s3cret").status == 200
    assert h.client(sim, "/admin/events?x_admin_key=s3cret").status == 200
    assert h.client(sim).status == 403
    method, path, headers = sim.requests_seen[-4]
    assert (method, path, headers["x-admin-key"], headers["Last-Event-ID"]) == (
        "GET",
        "/admin/events",
        "s3cret",
        "7",
    )


def test_wrong_method_and_unknown_path(h: Harness) -> None:
    sim = h.sim()
    assert requests.post(f"{sim.url}/admin/status", json={}, timeout=3).status_code == 405
    assert requests.get(f"{sim.url}/admin/nope", timeout=3).status_code == 404


def test_close_delimited_mode(h: Harness) -> None:
    sim = h.sim(chunked=False)
    c = h.client(sim)
    assert c.headers["connection"] == "close"
    assert "transfer-encoding" not in c.headers
    assert "content-length" not in c.headers
    assert sim.wait_for_subscribers(1)
    sim.publish("e", {"n": 1})
    assert c.read_until(b"\n\n") == b'event: e\ndata: {"n": 1}\n\n'
    sim.publish("e", {"n": 2})  # the connection stayed open
    assert c.read_until(b"\n\n") == b'event: e\ndata: {"n": 2}\n\n'
    sim.close_streams()
    assert c.read_to_eof() == b""
