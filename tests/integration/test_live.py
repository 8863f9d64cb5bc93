"""The live view's data against the simulator: /api/live says what /metrics says, the event
stream sends snapshots and changes, viewers are bounded and end with the exporter, and
the relay reads a second only while someone watches."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from lmx_simulator import LmxSimulator
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter
from opta_exporter.web.events import MAX_VIEWERS
from opta_exporter.web.webconfig import load_web_config
from tests.conftest import WAIT, is_open, scrape, value, wait_for
from tests.helpers import S3CRET_HASH
from tests.integration.test_sources import FAST, read_since

MakeExporter = Callable[..., Exporter]
MakeSim = Callable[..., LmxSimulator]
KEY = "live-admin-key"
MODEL = "mlx-community/Qwen3-8B-4bit"


def events(resp: requests.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, its JSON) as the stream sends them."""
    name = ""
    for line in resp.iter_lines(chunk_size=None, decode_unicode=True):
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def open_stream(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url + "/api/live/events", stream=True, timeout=WAIT, **kwargs)


def settled(exporter: Exporter) -> None:
    """Open, the model loaded, and every source read since: nothing moves any more."""
    wait_for(exporter, is_open)
    wait_for(exporter, lambda state, health: MODEL in state.loaded)
    for source in ("status", "memory", "health", "relay"):
        wait_for(exporter, read_since(exporter, source))
    wait_for(exporter, lambda state, health: len(state.throughput.window) >= 1)  # two relay reads


def test_live_says_what_metrics_says(make_sim: MakeSim, make_exporter: MakeExporter) -> None:
    sim = make_sim(admin_key=KEY)
    sim.load_model(MODEL)
    sim.record_request(MODEL, completion_tokens=120)
    exporter = make_exporter(sim, admin_key=KEY, **FAST)
    settled(exporter)
    resp = requests.get(exporter.url + "/api/live", timeout=WAIT)
    metrics = scrape(exporter)
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Cache-Control"] == "no-store"
    live = resp.json()
    assert KEY not in resp.text
    assert live["connection"]["state"] == "open"
    assert value(metrics, "opta_exporter_connection_state", state="open") == 1
    lmx = live["lmx"]
    assert lmx["up"] is True
    assert value(metrics, "opta_lmx_up") == 1
    assert value(metrics, "opta_lmx_info", version=lmx["version"]) == 1
    assert lmx["health"] == "ok"
    assert value(metrics, "opta_lmx_health_status", status="ok") == 1
    assert lmx["shedding"] is False
    assert value(metrics, "opta_lmx_load_shedding") == 0
    for key, name in (
        ("used_bytes", "opta_lmx_memory_used_bytes"),
        ("total_bytes", "opta_lmx_memory_total_bytes"),
        ("threshold_ratio", "opta_lmx_memory_threshold_ratio"),
        ("usage_ratio", "opta_lmx_memory_usage_ratio"),
    ):
        assert lmx["memory"][key] is not None
        assert lmx["memory"][key] == value(metrics, name), key
    assert lmx["requests"]["max_concurrent"] == value(metrics, "opta_lmx_requests_max_concurrent")
    assert lmx["requests"]["in_flight"] == value(metrics, "opta_lmx_requests_in_flight")
    assert lmx["relay"]["requests_total"] == value(metrics, "lmx_requests_total") == 1
    assert lmx["relay"]["errors_total"] == value(metrics, "lmx_errors_total") == 0
    (model,) = live["models"]
    assert model["model"] == MODEL
    assert value(metrics, "opta_lmx_model_loaded", model=MODEL, format=model["format"]) == 1
    assert model["memory_bytes"] == value(metrics, "opta_lmx_model_memory_bytes", model=MODEL)
    assert value(metrics, "opta_lmx_model_readiness", model=MODEL, state=model["readiness"]) == 1
    throughput = live["throughput"]
    assert throughput["window_seconds"] == exporter.config.window_duration
    assert throughput["resolution_seconds"] == FAST["relay_interval"]
    samples = value(metrics, "opta_lmx_throughput_window_samples")
    assert samples is not None
    assert samples >= 1
    assert throughput["samples"]
    # one model served every token: its own line is the total's, read for read
    assert list(throughput["models"]) == [MODEL]
    assert throughput["models"][MODEL] == throughput["samples"]
    for name, source in live["sources"].items():
        assert value(metrics, "opta_exporter_source_up", source=name) == float(source["up"])
        # FAST sources are read again between the two requests: the scrape's is no older
        later = value(metrics, "opta_exporter_source_last_success_timestamp_seconds", source=name)
        assert later is not None
        assert source["last_success"] <= later


def test_the_stream_sends_snapshots_and_a_change_on_a_load(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim(admin_key=KEY)
    exporter = make_exporter(sim, admin_key=KEY, **FAST)
    wait_for(exporter, is_open)
    with open_stream(exporter.url) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert resp.headers["Cache-Control"] == "no-store"
        stream = events(resp)
        name, first = next(stream)
        assert name == "live"
        assert first["models"] == []
        assert next(stream)[0] in ("live", "change")  # a second event follows unasked
        sim.load_model(MODEL)
        for name, doc in stream:
            if name == "change" and [m["model"] for m in doc["models"]] == [MODEL]:
                break


def test_viewers_are_bounded_and_a_leaver_frees_a_slot(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    exporter = make_exporter(sim)
    streams = [open_stream(exporter.url) for _ in range(MAX_VIEWERS)]
    try:
        for resp in streams:
            assert next(events(resp))[0] == "live"
        refused = open_stream(exporter.url)
        assert refused.status_code == 503
        assert f"at most {MAX_VIEWERS} viewers" in refused.text
        streams.pop().close()
        assert exporter.live.wait_for_viewers(MAX_VIEWERS - 1, WAIT)
        streams.append(open_stream(exporter.url))
        assert streams[-1].status_code == 200
    finally:
        for resp in streams:
            resp.close()
    assert exporter.live.wait_for_viewers(0, WAIT)
    head = requests.head(exporter.url + "/api/live/events", timeout=WAIT)
    assert head.status_code == 200
    assert head.headers["Content-Type"] == "text/event-stream"
    assert exporter.live.viewers == 0  # a HEAD's slot is back before its answer ends


def test_stopping_the_exporter_ends_open_streams(
    sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    exporter = make_exporter(sim)
    resp = open_stream(exporter.url)
    ended = threading.Event()

    def read() -> None:
        try:
            for _ in events(resp):
                pass
        except requests.exceptions.RequestException:
            pass
        ended.set()

    stream = events(resp)
    assert next(stream)[0] == "live"
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    exporter.stop()
    assert ended.wait(WAIT), "the stream outlived the exporter"
    assert exporter.live.wait_for_viewers(0, WAIT)
    resp.close()


def test_basic_auth_guards_the_live_routes(
    tmp_path: Path, sim: LmxSimulator, make_exporter: MakeExporter
) -> None:
    web_file = tmp_path / "web.yml"
    web_file.write_text(f"basic_auth_users:\n  prom: '{S3CRET_HASH}'\n")
    exporter = make_exporter(sim, web=load_web_config(str(web_file)))
    url = exporter.url
    for path in ("/", "/api/live", "/static/live.js", "/static/live.css"):
        assert requests.get(url + path, timeout=WAIT).status_code == 401, path
    with open_stream(url) as resp:
        assert resp.status_code == 401
    assert exporter.live.viewers == 0
    ok = requests.get(url + "/api/live", auth=("prom", "s3cret"), timeout=WAIT)
    assert ok.status_code == 200
    assert "connection" in ok.json()
    with open_stream(url, auth=("prom", "s3cret")) as resp:
        assert next(events(resp))[0] == "live"
    page = requests.get(url + "/", auth=("prom", "s3cret"), timeout=WAIT)
    assert page.status_code == 200
    assert "/static/live.js" in page.text


def metrics_reads(sim: LmxSimulator) -> int:
    return sum(path.startswith("/admin/metrics") for _, path, _ in sim.requests_seen)


def snapshots_after(exporter: Exporter, n: int) -> Callable[[LmxState, ExporterHealth], bool]:
    """A predicate: `n` more snapshot reads than now, the test's yardstick of time passing
    (at FAST's 0.2 s, 12 take over two seconds)."""
    mark = exporter.store.view().health.resyncs["success"]
    return lambda state, health: health.resyncs["success"] >= mark + n


def test_the_relay_reads_a_second_only_while_watched(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    sim = make_sim(admin_key=KEY)
    exporter = make_exporter(sim, admin_key=KEY, snapshot_interval=0.2, relay_interval=30.0)
    relay = exporter.relay
    assert relay is not None
    assert relay.wait_for_reads(1, WAIT)
    before = metrics_reads(sim)
    wait_for(exporter, snapshots_after(exporter, 12))
    assert metrics_reads(sim) - before <= 1  # unwatched: one read per 30 s
    watched, reads = metrics_reads(sim), sum(relay.view().reads.values())
    with open_stream(exporter.url) as resp:
        stream = events(resp)
        assert next(stream)[0] == "live"
        # at once, then a second apart: at 30 s, three would not come within WAIT
        assert relay.wait_for_reads(reads + 3, WAIT)
        assert metrics_reads(sim) - watched >= 3
        for name, doc in stream:
            if name == "live" and doc["throughput"]["resolution_seconds"] == 1.0:
                break
    assert exporter.live.wait_for_viewers(0, WAIT)
    left = metrics_reads(sim)
    wait_for(exporter, snapshots_after(exporter, 12))
    assert metrics_reads(sim) - left <= 1  # back to its interval
    live = requests.get(exporter.url + "/api/live", timeout=WAIT).json()
    assert live["throughput"]["resolution_seconds"] == 30.0


def test_the_stream_sends_each_chart_sample_once(
    make_sim: MakeSim, make_exporter: MakeExporter
) -> None:
    """The first event has the whole window, each later one only what is new: over the
    stream, the total's and the model's samples each come once, oldest first, and the
    whole of them is the window /api/live has."""
    sim = make_sim()
    sim.load_model(MODEL)
    sim.record_request(MODEL, completion_tokens=10)
    exporter = make_exporter(sim, **FAST)
    settled(exporter)
    got: dict[str, list[list[float]]] = {"total": [], MODEL: []}
    with open_stream(exporter.url) as resp:
        for count, (_, doc) in enumerate(events(resp)):
            throughput = doc["throughput"]
            got["total"] += throughput["samples"]
            got[MODEL] += throughput["models"].get(MODEL, [])
            if count == 0:
                first = len(got["total"])
            elif count >= 4:
                break
    for line in got.values():
        times = [t for t, _ in line]
        assert times == sorted(set(times))  # each once, in order
    assert len(got["total"]) > first >= 1  # news after the first event's window
    assert got[MODEL] == got["total"]  # one model served every token
    window = requests.get(exporter.url + "/api/live", timeout=WAIT).json()["throughput"]
    newest = got["total"][-1][0]
    assert [s for s in window["samples"] if s[0] <= newest] == got["total"]
