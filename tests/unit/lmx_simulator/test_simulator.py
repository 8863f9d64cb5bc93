"""The LMX stand-in against real sockets: each quirk of lmx-protocol.md, and each switch.

A raw-socket client is used for /admin/events so chunk boundaries and silences are visible;
silences are checked with socket timeouts, never with sleeps.
"""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from lmx_simulator import LmxSimulator
from lmx_simulator.demo import MAIN_MODEL, ODD_MODEL, DemoScenario, main, run_demo
from tests.helpers import LOAD_SEQUENCE, ROOT

ODD_ID = '/m/we"ird\\x.gguf'


class RawClient:
    """A minimal HTTP/1.1 client that shows chunk boundaries and times out cleanly."""

    def __init__(
        self,
        port: int,
        path: str = "/admin/events",
        headers: dict[str, str] | None = None,
        rcvbuf: int | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(3.0)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, *header_lines = self.read_until(b"\r\n\r\n").decode().split("\r\n")
        self.status = int(status.split()[1])
        pairs = [line.split(":", 1) for line in header_lines if line]
        self.headers = {k.strip().lower(): v.strip() for k, v in pairs}

    def _fill(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError
        self.buf += data

    def read_until(self, sep: bytes) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            self._fill()
        out = bytes(self.buf[: i + len(sep)])
        del self.buf[: i + len(sep)]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_chunk(self) -> bytes:
        """One HTTP chunk's payload; b"" is the terminating chunk."""
        size = int(self.read_until(b"\r\n")[:-2], 16)
        data = self.read_exact(size)
        assert self.read_exact(2) == b"\r\n"
        return data

    def read_to_eof(self) -> bytes:
        """Everything left until the server closes (a socket timeout fails the test)."""
        try:
            while True:
                self._fill()
        except (EOFError, ConnectionResetError):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def close(self) -> None:
        self.sock.close()


class Harness:
    """Starts simulators and clients, and stops/closes every one of them at teardown."""

    def __init__(self) -> None:
        self.sims: list[LmxSimulator] = []
        self.clients: list[RawClient] = []

    def sim(self, **kwargs: Any) -> LmxSimulator:
        sim = LmxSimulator(**kwargs)
        self.sims.append(sim)
        sim.start()
        return sim

    def client(self, sim: LmxSimulator, path: str = "/admin/events", **kwargs: Any) -> RawClient:
        client = RawClient(sim.port, path, **kwargs)
        self.clients.append(client)
        return client


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    for client in harness.clients:
        client.close()
    for sim in harness.sims:
        sim.stop()


def event(chunk: bytes) -> tuple[str, dict[str, Any]]:
    head, data = chunk.decode().rstrip("\n").split("\n")
    return head.removeprefix("event: "), json.loads(data.removeprefix("data: "))


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


def test_one_chunk_per_frame_in_both_dialects(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.publish("config_reloaded", {"log_level": "INFO"})
    sim.publish_envelope("throughput", {"timestamp": 1, "tokensPerSecond": 2.5})
    sim.publish_raw(b"data: not json\n\n")
    assert c.read_chunk() == b'event: config_reloaded\ndata: {"log_level": "INFO"}\n\n'
    assert c.read_chunk() == (
        b'data: {"type": "throughput", "data": {"timestamp": 1, "tokensPerSecond": 2.5}}\n\n'
    )
    assert c.read_chunk() == b"data: not json\n\n"
    assert sim.events_published == 3


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


def test_load_streams_lmx_sequence_and_unload_sends_one_event(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.load_model("m", fmt="gguf", memory_gb=3.0)
    events = [event(c.read_chunk()) for _ in range(8)]
    assert [name for name, _ in events] == list(LOAD_SEQUENCE)
    readiness = [(d["previous_state"], d["state"]) for n, d in events if n.startswith("model_r")]
    assert readiness == [
        ("unknown", "admitted"),
        ("admitted", "loading"),
        ("loading", "canary_pending"),
        ("canary_pending", "routable"),
    ]
    assert events[3][1] == {
        "model_id": "m",
        "format": "gguf",
        "memory_gb": 3.0,
        "duration_sec": 1.5,
    }
    assert {"ts", "metadata"} <= events[6][1].keys()
    sim.load_model("quiet", emit=False)
    sim.unload_model("m", reason="lru")
    assert event(c.read_chunk()) == (
        "model_unloaded",
        {"model_id": "m", "memory_freed_gb": 3.0, "reason": "lru"},
    )


def test_status_and_memory_follow_the_model_state(h: Harness) -> None:
    sim = h.sim(memory_total_gb=100.0, max_concurrent_requests=2)
    sim.load_model("a", memory_gb=4.5)
    sim.load_model("b", memory_gb=3.5, emit=False)
    sim.set_in_flight(1)
    r = requests.get(f"{sim.url}/admin/status", timeout=3)
    assert r.headers["Content-Length"] == str(len(r.content))
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    status = r.json()
    assert status["models"] == ["a", "b"]
    assert status["loaded_models"] == 2
    assert status["memory"] == {
        "total_gb": 100.0,
        "used_gb": 10.0,
        "available_gb": 90.0,
        "usage_percent": 10.0,
        "threshold_percent": 90,
    }
    assert (status["in_flight_requests"], status["max_concurrent_requests"]) == (1, 2)
    assert status["version"] == "0.1.0"
    sim.unload_model("a")
    memory = requests.get(f"{sim.url}/admin/memory", timeout=3).json()
    assert memory == {
        "total_unified_memory_gb": 100.0,
        "used_gb": 5.5,
        "available_gb": 94.5,
        "threshold_percent": 90,
        "models": {"b": {"memory_gb": 3.5, "loaded": True}},
    }
    sim.set_models({"c": 1.0})
    assert requests.get(f"{sim.url}/admin/status", timeout=3).json()["models"] == ["c"]


def test_status_envelope_carries_the_dashboard_snapshot(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.load_model("org/model-4bit", memory_gb=4.0, emit=False)
    sim.publish_status_envelope()
    envelope = json.loads(c.read_chunk().decode().removeprefix("data: "))
    assert envelope["type"] == "status"
    assert envelope["data"]["loaded_models"][0]["id"] == "org/model-4bit"
    assert envelope["data"]["loaded_models"][0]["name"] == "model-4bit"
    assert envelope["data"]["vram_used_gb"] == 6.0


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


def test_slow_consumer_becomes_a_heartbeat_only_zombie(h: Harness) -> None:
    sim = h.sim(queue_size=5, heartbeat_interval=0.2)
    c = h.client(sim, rcvbuf=4096)
    assert sim.wait_for_subscribers(1)
    padding = "x" * 65536
    for i in range(2000):  # the socket buffers fill, then the queue, then LMX gives up
        sim.publish("flood", {"i": i, "padding": padding})
        if sim.zombie_count():
            break
    assert (sim.zombie_count(), sim.subscriber_count()) == (1, 0)
    sim.publish("after", {})
    seen_flood = False
    while True:  # the queued backlog drains, then heartbeats only
        name, _ = event(c.read_chunk())
        assert name != "after"
        seen_flood = seen_flood or name == "flood"
        if seen_flood and name == "heartbeat":
            break
    assert h.client(sim).status == 200  # a zombie holds no slot
    assert sim.wait_for_subscribers(1)


def test_unbounded_queue_switch_never_drops(h: Harness) -> None:
    sim = h.sim(queue_size=2, zombie_on_overflow=False)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    for i in range(50):
        sim.publish("e", {"i": i})
    assert [event(c.read_chunk())[1]["i"] for _ in range(50)] == list(range(50))
    assert (sim.zombie_count(), sim.subscriber_count()) == (0, 1)


def test_subscriber_past_the_limit_gets_200_and_an_empty_body(h: Harness) -> None:
    sim = h.sim(max_subscribers=3, reserved_subscribers=1)
    h.client(sim)
    h.client(sim)
    assert sim.wait_for_subscribers(2)
    refused = h.client(sim)
    assert refused.status == 200
    assert refused.headers["content-type"].startswith("text/event-stream")
    assert refused.read_chunk() == b""
    assert refused.read_to_eof() == b""
    assert (sim.subscriber_count(), sim.connections_total) == (2, 3)


def test_metrics_reproduce_lmx_unescaped_labels(h: Harness) -> None:
    sim = h.sim()
    before = requests.get(f"{sim.url}/admin/metrics", timeout=3).text
    assert "lmx_model_requests_total" not in before
    assert "lmx_speculative_acceptance_ratio NaN" in before
    sim.record_request(ODD_ID, latency_sec=0.3, completion_tokens=7)
    sim.record_request(ODD_ID, latency_sec=2.0, error=True, stream=True, completion_tokens=5)
    text = requests.get(f"{sim.url}/admin/metrics", timeout=3).text
    bucket = "lmx_request_duration_seconds_bucket"
    expected = [
        "lmx_requests_total 2",
        "lmx_errors_total 1",
        "lmx_stream_requests_total 1",
        f'lmx_model_requests_total{{model="{ODD_ID}"}} 2',
        f'lmx_model_tokens_total{{model="{ODD_ID}"}} 12',
        f'{bucket}{{model="{ODD_ID}",le="0.25"}} 0',
        f'{bucket}{{model="{ODD_ID}",le="0.5"}} 1',
        f'{bucket}{{model="{ODD_ID}",le="+Inf"}} 2',
    ]
    assert set(expected) <= set(text.splitlines())


def test_request_events_switch(h: Harness) -> None:
    sim = h.sim(emit_request_events=True)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.record_request("m", latency_sec=1.0, ttft_sec=0.1)
    name, data = event(c.read_chunk())
    assert name == "request_completed"
    assert data["ttft_sec"] == 0.1
    assert "tokens_per_second" not in data


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


def test_close_streams_ends_cleanly_and_keeps_listening(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    sim.close_streams()
    assert c.read_chunk() == b""
    assert sim.wait_for(lambda: sim.subscriber_count() == 0)
    assert h.client(sim).status == 200
    assert sim.wait_for_subscribers(1)


def test_stop_is_prompt_with_open_and_blocked_streams(h: Harness) -> None:
    sim = h.sim(zombie_on_overflow=False)
    idle = h.client(sim)
    h.client(sim, rcvbuf=4096)  # never reads: its handler blocks in a write
    assert sim.wait_for_subscribers(2)
    for i in range(100):
        sim.publish("flood", {"i": i, "padding": "x" * 65536})
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 0.5
    assert idle.read_to_eof().count(b"event: flood") <= 100  # then the connection ends
    sim.stop()  # idempotent


def test_restart_rebinds_the_same_port_with_fresh_counters(h: Harness) -> None:
    sim = h.sim()
    port = sim.port
    sim.record_request("m")
    with requests.Session() as session:  # its kept-alive connection must not outlive stop()
        assert "lmx_requests_total 1" in session.get(f"{sim.url}/admin/metrics", timeout=3).text
        sim.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(f"{sim.url}/admin/status", timeout=3)
        sim.start()
        assert sim.port == port
        assert "lmx_requests_total 0" in session.get(f"{sim.url}/admin/metrics", timeout=3).text
    assert h.client(sim).status == 200
    assert sim.wait_for_subscribers(1)


def test_run_demo_produces_a_live_scenario(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    stop = threading.Event()
    thread = threading.Thread(target=run_demo, args=(sim, stop, random.Random(7)))
    thread.start()
    try:
        loaded: set[str] = set()
        envelopes: set[str] = set()
        while len(loaded) < 2 or envelopes != {"status", "throughput"}:
            chunk = c.read_chunk()
            if chunk.startswith(b"data: "):
                envelopes.add(json.loads(chunk[6:])["type"])
            elif (item := event(chunk))[0] == "model_loaded":
                loaded.add(item[1]["model_id"])
    finally:
        stop.set()
        thread.join(2.0)
    assert not thread.is_alive()
    assert loaded == {MAIN_MODEL, ODD_MODEL}


def test_demo_scenario_covers_every_kind_of_event(h: Harness) -> None:
    sim = h.sim(queue_size=100_000)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    scenario = DemoScenario(sim, random.Random(3))
    for tick in range(1300):  # two minutes of demo, stepped without its pacing
        scenario.step(tick)
    sim.publish("end", {})
    names: set[str] = set()
    while "end" not in names:
        chunk = c.read_chunk()
        names.add("envelope" if chunk.startswith(b"data: ") else event(chunk)[0])
    assert names >= {
        "model_loaded",
        "model_unloaded",
        "model_ttl_evicted",
        "download_progress",
        "download_completed",
        "quantize_progress",
        "config_reloaded",
        "envelope",
    }


def test_demo_main_rejects_a_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--admin-key-file", str(tmp_path / "absent")])
    assert exc.value.code == 2


def test_module_entry_point_runs_until_sigterm(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k\n")
    command = [sys.executable, "-m", "lmx_simulator", "--port", "0"]
    command += ["--admin-key-file", str(key_file)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip().removeprefix("LMX simulator on ")
            assert requests.get(f"{url}/admin/status", timeout=3).status_code == 403
            r = requests.get(f"{url}/admin/status", headers={"X-Admin-Key": "k"}, timeout=3)
            assert r.json()["version"] == "0.1.0"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=3) == 0
        finally:
            proc.kill()  # a no-op once it has exited
