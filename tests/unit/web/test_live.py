"""/api/live's document (web/live.py) from a state built by hand, and the feed's viewers,
changes and stop (web/events.py), without a socket."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from pathlib import Path
from typing import Any

import requests

from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth, SourceStatus
from opta_exporter.core.state import LmxState
from opta_exporter.core.throughput import TokenCount
from opta_exporter.metrics.collector import tables
from opta_exporter.relay.parse import parse_lmx_metrics
from opta_exporter.relay.reader import LIVE_INTERVAL, RelayReader
from opta_exporter.store import Store, View
from opta_exporter.web.events import CHANGE_GAP, MAX_VIEWERS, LiveFeed, Stream, encode, frame
from opta_exporter.web.live import Sent, only_new, snapshot
from tests.fakes import FakeClock

WALL, MONO = 1_700_000_000.0, 1_000.0
SOURCES = ("status", "memory", "health", "relay")


def health(fresh: tuple[str, ...] = SOURCES) -> ExporterHealth:
    h = ExporterHealth(sources={name: SourceStatus(15.0) for name in SOURCES})
    for name in fresh:
        h.sources[name] = SourceStatus(15.0, True, WALL - 1, MONO - 1)
    h.connection_state = "open"
    h.last_event_wall = WALL - 2
    h.last_activity = MONO - 2
    return h


def state() -> LmxState:
    s = LmxState()
    s.version = "1.2.3"
    s.memory_total, s.memory_used, s.memory_threshold = 64e9, 20e9, 0.9
    s.in_flight, s.max_concurrent = 2.0, 4.0
    s.loaded["m/a"] = "mlx"
    s.model_memory["m/a"] = 5e9
    s.readiness["m/a"] = "routable"
    s.readiness["m/b"] = "loading"
    s.crashes["m/a"] = 1.0
    s.count_tokens(TokenCount(MONO - 11, WALL - 11, 100.0, None, {"m/a": 100.0, "m/z": 0.0}))
    s.count_tokens(TokenCount(MONO - 1, WALL - 1, 600.0, None, {"m/a": 500.0, "m/z": 100.0}))
    return s


def document(s: LmxState, h: ExporterHealth, relay_text: str | None = None) -> dict[str, Any]:
    view = View(s, h, MONO, WALL)
    families = None if relay_text is None else parse_lmx_metrics(relay_text, 100).families
    doc = snapshot(view, tables(s, h, MONO, WALL), families, 15.0)
    result: dict[str, Any] = json.loads(encode(doc))
    return result


def test_every_fresh_figure_is_in_the_document() -> None:
    relay = "# TYPE lmx_requests_total counter\nlmx_requests_total 7\nlmx_errors_total 1\n"
    doc = document(state(), health(), relay)
    assert doc["time"] == WALL
    assert doc["connection"] == {
        "state": "open",
        "backoff_seconds": 0.0,
        "last_event": WALL - 2,
        "last_error": None,  # no connection lost yet
        "last_error_time": None,
    }
    assert doc["lmx"] == {
        "up": True,
        "version": "1.2.3",
        "health": None,  # no health reading
        "shedding": False,
        "memory": {
            "used_bytes": 20e9,
            "total_bytes": 64e9,
            "threshold_ratio": 0.9,
            "usage_ratio": None,
        },
        "requests": {"in_flight": 2.0, "max_concurrent": 4.0},
        "relay": {"requests_total": 7.0, "errors_total": 1.0},
    }
    assert doc["models"] == [
        {
            "model": "m/a",
            "format": "mlx",
            "memory_bytes": 5e9,
            "readiness": "routable",
            "crashes": 1.0,
        },
        {
            "model": "m/b",
            "format": None,
            "memory_bytes": None,
            "readiness": "loading",
            "crashes": None,
        },
    ]
    assert doc["throughput"] == {
        "window_seconds": 300.0,
        "resolution_seconds": 15.0,
        "samples": [[WALL - 1, 50.0]],
        "models": {"m/a": [[WALL - 1, 40.0]], "m/z": [[WALL - 1, 10.0]]},
        "models_with_samples": 2,
    }
    assert doc["sources"]["memory"] == {"up": True, "last_success": WALL - 1}


def test_what_metrics_leaves_out_is_null() -> None:
    doc = document(state(), health(fresh=()), None)
    lmx = doc["lmx"]
    assert lmx["version"] is None
    assert set(lmx["memory"].values()) == {None}
    assert set(lmx["requests"].values()) == {None}
    assert lmx["relay"] == {"requests_total": None, "errors_total": None}
    assert doc["throughput"]["samples"] is None
    assert doc["throughput"]["models"] is None
    assert doc["throughput"]["models_with_samples"] == 0
    assert doc["sources"]["relay"] == {"up": False, "last_success": None}


def test_the_last_lost_connection_says_why_and_when() -> None:
    clock = FakeClock(mono=MONO, wall=WALL)
    store = Store(LmxState(), health(), clock)
    store.set_connection("backoff", 2.0, "http_error", "http_error: HTTP 503")
    store.set_connection("open")
    with store.lock:
        view = View(store.state.copy(), store.health.copy(), MONO, WALL)
    doc = snapshot(view, tables(view.state, view.health, MONO, WALL), None, None)
    assert doc["connection"]["last_error"] == "http_error: HTTP 503"
    assert doc["connection"]["last_error_time"] == WALL
    assert doc["connection"]["state"] == "open"  # the error stays: it is the last one


def chart(samples: list[list[float]] | None, **models: list[list[float]]) -> dict[str, Any]:
    return {"time": WALL, "throughput": {"samples": samples, "models": models}}


def test_a_stream_sends_each_sample_once_and_a_new_line_whole() -> None:
    sent = Sent()
    first = only_new(chart([[1, 10], [2, 20]], a=[[1, 5], [2, 6]]), sent)
    assert first["throughput"]["samples"] == [[1, 10], [2, 20]]  # the whole window
    assert first["time"] == WALL
    later = only_new(
        chart([[1, 10], [2, 20], [3, 30]], a=[[2, 6], [3, 7]], b=[[1, 1], [3, 2]]), sent
    )
    assert later["throughput"] == {
        "samples": [[3, 30]],
        "models": {"a": [[3, 7]], "b": [[1, 1], [3, 2]]},  # b is new here: whole
    }
    quiet = only_new(chart([[2, 20], [3, 30]], a=[[3, 7]]), sent)  # b no longer drawn
    assert quiet["throughput"]["samples"] == []
    assert quiet["throughput"]["models"] == {"a": []}  # still drawn, nothing new
    back = only_new(chart([[3, 30], [4, 40]], a=[[4, 8]], b=[[1, 1], [3, 2], [4, 3]]), sent)
    assert back["throughput"]["models"] == {"a": [[4, 8]], "b": [[1, 1], [3, 2], [4, 3]]}
    stale = chart(None)
    stale["throughput"]["models"] = None
    assert only_new(stale, sent) is stale  # the relay is stale: the chart starts over
    again = only_new(chart([[5, 50]], a=[[5, 9]]), sent)
    assert again["throughput"] == {"samples": [[5, 50]], "models": {"a": [[5, 9]]}}
    assert sent == Sent(5, {"a": 5})


def test_only_the_busiest_models_lines_travel() -> None:
    s = LmxState()
    s.count_tokens(TokenCount(MONO - 11, WALL - 11, 0.0, None, {f"m{i}": 0.0 for i in range(10)}))
    per_model = {f"m{i}": 10.0 * i for i in range(10)}
    s.count_tokens(TokenCount(MONO - 1, WALL - 1, 450.0, None, per_model))
    throughput = document(s, health())["throughput"]
    assert list(throughput["models"]) == [f"m{i}" for i in range(4, 10)]  # by id
    assert throughput["models"]["m9"] == [[WALL - 1, 9.0]]
    assert throughput["models_with_samples"] == 10


def test_no_nan_reaches_the_json() -> None:
    assert json.loads(encode({"a": math.nan, "b": [math.inf, 1.0]})) == {
        "a": None,
        "b": [None, 1.0],
    }
    assert frame("live", b"{}") == b"event: live\ndata: {}\n\n"


def feed_with_relay() -> tuple[LiveFeed, RelayReader, Store]:
    store = Store(LmxState(), ExporterHealth(), FakeClock())
    relay = RelayReader(
        Config(lmx_url="http://lmx.test:1234", relay_interval=15.0), requests.Session()
    )
    return LiveFeed(store, relay), relay, store


def test_viewers_are_bounded_and_set_the_relays_cadence() -> None:
    feed, relay, _ = feed_with_relay()
    assert relay.interval() == 15.0
    streams = []
    for _ in range(MAX_VIEWERS):
        assert feed.join()
        streams.append(Stream(feed))
    assert relay.interval() == LIVE_INTERVAL
    assert not feed.join()
    for stream in streams:
        stream.close()  # never iterated (a HEAD): the slot is freed all the same
        stream.close()  # and only once
    assert feed.viewers == 0
    assert relay.interval() == 15.0


def test_a_change_is_sent_at_once_and_stop_ends_the_stream() -> None:
    feed, _, store = feed_with_relay()
    assert feed.join()
    stream = Stream(feed)
    events = iter(stream)
    assert next(events).startswith(b"event: live\n")
    store.set_connection("backoff", 0.5)
    change = next(e for e in events if e.startswith(b"event: change\n"))  # past a tick
    assert b'"state":"backoff"' in change
    ended = threading.Event()

    def drain() -> None:
        for _ in events:
            pass
        ended.set()

    threading.Thread(target=drain, daemon=True).start()
    feed.stop()
    assert ended.wait(5.0)
    stream.close()
    assert feed.viewers == 0
    assert not feed.join()  # stopped: no new viewer


def test_a_burst_of_changes_is_coalesced() -> None:
    """After a `change`, the next waits out CHANGE_GAP and carries the state as it is then:
    three steps in a row are one event, not three."""
    feed, _, store = feed_with_relay()
    assert feed.join()
    stream = Stream(feed)
    events = iter(stream)
    next(events)  # live
    store.set_connection("backoff", 0.5)
    next(e for e in events if e.startswith(b"event: change\n"))
    sent = time.monotonic()
    for state in ("connecting", "backoff", "open"):
        store.set_connection(state)
    coalesced = next(e for e in events if e.startswith(b"event: change\n"))  # past a tick
    assert time.monotonic() - sent >= CHANGE_GAP
    assert b'"state":"open"' in coalesced
    stream.close()


MAPS = ("sources", "throughput.models")  # keyed by a source or model id, not a fixed name


def fields(doc: dict[str, Any], prefix: str = "") -> set[str]:
    """The document's field paths, as docs/live-api.md names them."""
    paths = set()
    for key, value in doc.items():
        path = prefix + key
        if isinstance(value, dict) and path not in MAPS:
            paths |= fields(value, path + ".")
        else:
            paths.add(path + "[]" if isinstance(value, list) and path == "models" else path)
    return paths


def test_the_documented_fields_are_the_documents() -> None:
    """docs/live-api.md's table names every field the code sends, and no other."""
    text = (Path(__file__).parents[3] / "docs" / "live-api.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \|", text, re.M)
    documented = {row.removesuffix(".*") for row in rows}
    sent = fields(document(state(), health()))
    covered = {
        path
        for path in sent
        if path in documented or any(path.startswith(d + ".") for d in documented)
    }
    assert sent == covered, sent - covered
    used = {d for d in documented if any(p == d or p.startswith(d + ".") for p in sent)}
    assert used == documented, documented - used
