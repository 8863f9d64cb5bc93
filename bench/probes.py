"""Functions run inside the children (see agents.Agent): clocks, the exporter, the
reference consumers and the simulator's publishers.

A `Mark` is read in the process it describes: its CPU time (all threads), the stream
thread's own CPU time, its RSS and the monotonic clock (system-wide, so marks taken in
different processes compare).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import requests
from sseclient import SSEClient

from bench.report import Json
from bench.workload import frames, paced
from lmx_simulator import LmxSimulator
from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.core.throughput import TokenCount
from opta_exporter.daemon import Exporter
from opta_exporter.relay.text import RelayText
from opta_exporter.stream import transport as wire
from opta_exporter.stream.pacer import Pacer

POLL = 0.01  # the harness polls the store instead of waiting on its Condition: see README
STATUS = Path("/proc/self/status")
FILLER_MODEL = "mlx-community/bench-filler-4bit"


@dataclass(frozen=True)
class Mark:
    mono: float
    cpu: float  # process CPU seconds, every thread
    thread_cpu: float  # CPU seconds of the exporter's stream thread (0 when there is none)
    rss: int  # bytes
    peak_rss: int  # bytes (VmHWM)
    blocks: int  # Python objects' memory blocks (sys.getallocatedblocks): the heap, not RSS
    events: int = 0


def _memory() -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in STATUS.read_text().splitlines() if line.startswith("Vm")
    )
    return (int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)


def _thread_cpu(name: str) -> float:
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            try:
                return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except OSError:
                return 0.0
    return 0.0


def thread_cpus(_: object = None) -> dict[str, float]:
    """CPU seconds of every live thread of this process, by thread name."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is not None:
            with contextlib.suppress(OSError):
                clock = time.pthread_getcpuclockid(thread.ident)
                out[thread.name] = out.get(thread.name, 0.0) + time.clock_gettime(clock)
    return out


def mark(events: int = 0, thread: str = "stream") -> Mark:
    rss, peak = _memory()
    return Mark(
        time.monotonic(),
        time.process_time(),
        _thread_cpu(thread),
        rss,
        peak,
        sys.getallocatedblocks(),
        events,
    )


# -- the exporter ---------------------------------------------------------------------
def make_exporter(lmx_url: str, **overrides: Any) -> Exporter:
    config = dataclasses.replace(
        Config(lmx_url=lmx_url, listen_host="127.0.0.1", listen_port=0), **overrides
    )
    exporter = Exporter(config)
    exporter.start()
    return exporter


def stop_exporter(exporter: Exporter) -> None:
    exporter.stop()


def exporter_url(exporter: Exporter) -> str:
    return exporter.url + exporter.config.telemetry_path


def _is_up(state: LmxState, health: ExporterHealth) -> bool:
    return health.up(time.monotonic())


def wait_up(exporter: Exporter, timeout: float = 30.0) -> Mark:
    if not exporter.store.wait_for(_is_up, timeout):
        raise TimeoutError("the exporter did not connect")
    return mark()


def events_seen(exporter: Exporter) -> int:
    """Every event counted, heartbeats excluded: what reached the state."""
    with exporter.store.lock:
        events = exporter.store.state.events
        return int(sum(events.values()) - events.get("heartbeat", 0.0))


def serving_cpu(exporter: Exporter) -> float:
    """CPU seconds of the HTTP threads: the accept loop and the kept connections'."""
    return sum(cpu for name, cpu in thread_cpus().items() if name in ("http", "http-conn"))


def exporter_mark(exporter: Exporter) -> Mark:
    return mark(events_seen(exporter))


def wait_events(exporter: Exporter, count: int, timeout: float = 300.0) -> Mark:
    """Mark taken as soon as a scrape would show `count` events (polled every 10 ms,
    flushing the reader as a scrape does: a batch's last events wait for that, or for
    the window), or at the timeout with what arrived (a lost event shows as
    `events < count`)."""
    deadline = time.monotonic() + timeout
    stop = threading.Event()
    while True:
        exporter.store.sync()
        if (seen := events_seen(exporter)) >= count or time.monotonic() >= deadline:
            break
        stop.wait(POLL)
    return mark(seen)


def heartbeats_seen(exporter: Exporter) -> int:
    with exporter.store.lock:
        return int(exporter.store.state.events.get("heartbeat", 0.0))


def models_admitted(exporter: Exporter) -> int:
    with exporter.store.lock:
        return len(exporter.store.state.loaded)


def wait_state(
    exporter: Exporter,
    predicate: Callable[[LmxState, ExporterHealth], bool],
    timeout: float = 30.0,
) -> float:
    """Monotonic time at which `predicate` first held (Condition wait: prompt)."""
    if not exporter.store.wait_for(predicate, timeout):
        raise TimeoutError("state not reached")
    return time.monotonic()


def config_reloads_at_least(count: int, state: LmxState, health: ExporterHealth) -> bool:
    return state.config_reloads >= count


def up_with_model(model: str, state: LmxState, health: ExporterHealth) -> bool:
    return model in state.loaded and health.up(time.monotonic())


def _ingest(exporter: Exporter, name: str, **data: object) -> None:
    exporter.store.ingest(name, json.dumps(data))


def fill(exporter: Exporter, models: list[str], requests_per_model: int = 20) -> None:
    """A state with every per-model series and histogram populated, through the store's
    public ingest: a load, readiness, canary and compatibility checks per model (what LMX
    sends; requests are relayed, not events), throughput window full."""
    for n, model in enumerate(models):
        _ingest(
            exporter, "model_loaded", model_id=model, format="mlx", memory_gb=4.0, duration_sec=3.0
        )
        _ingest(
            exporter,
            "model_readiness_changed",
            model_id=model,
            previous_state="loading",
            state="routable",
            reason=None,
            crash_count=n % 3,
            updated_at=1.0,
        )
        _ingest(exporter, "model_canary_passed", model_id=model, backend="mlx", duration_sec=0.4)
        for i in range(requests_per_model):
            _activity(exporter, model, i)
    config = exporter.config
    _throughput(exporter, int(config.window_duration / config.relay_interval))


def _activity(exporter: Exporter, model: str, i: int) -> None:
    """What LMX sends about a loaded model: a compatibility check and a canary (its
    duration moves a histogram series)."""
    outcome = "fail" if i % 10 == 0 else "pass"
    _ingest(exporter, "model_compatibility_recorded", model_id=model, backend="mlx",
            outcome=outcome, reason="", ts=1.0, metadata={})  # fmt: skip
    _ingest(exporter, "model_canary_passed", model_id=model, duration_sec=0.05 * (i % 40 + 1))


def _throughput(exporter: Exporter, samples: int) -> None:
    """Throughput samples as the relay makes them (LMX has no live tokens/s): reads of
    its completion-token counter one relay interval apart, each rate one sample."""
    interval = exporter.config.relay_interval
    for i in range(samples):
        with exporter.store.lock:
            before = exporter.store.state.throughput.last
        mono, tokens = (0.0, 0.0) if before is None else (before.mono, before.completion_tokens)
        rate = 10.0 + i % 40
        exporter.store.count_tokens(
            TokenCount(mono + interval, time.time(), tokens + rate * interval)
        )


def traffic(exporter: Exporter, models: list[str], step: int) -> None:
    """What a busy LMX changes between two scrapes: activity on each of a few models
    (counters and histogram series), and throughput samples."""
    for model in models:
        _activity(exporter, model, step)
    _throughput(exporter, 10)


def relay_cost(exporter: Exporter, reads: int) -> Json:
    """CPU of the relay's work, in this (the exporter's) thread: one read of LMX's
    /admin/metrics (fetch, parse, cap) and writing its text for the next scrape."""
    assert exporter.relay is not None
    text = RelayText(exporter.relay)
    read_ms, write_ms = [], []
    lines = 0
    for _ in range(reads):
        began = time.thread_time()
        if not exporter.relay.read_once():
            raise RuntimeError("relay read failed")
        read_ms.append(1e3 * (time.thread_time() - began))
        began = time.thread_time()
        lines = text.render(True).count(b"\n")
        write_ms.append(1e3 * (time.thread_time() - began))
    return {"reads": reads, "lines": lines, "read_ms": read_ms, "write_ms": write_ms}


def record_requests(sim: LmxSimulator, models: list[str]) -> None:
    """What LMX reports only on /admin/metrics: a request per model."""
    for model in models:
        sim.record_request(model, latency_sec=0.3)


# -- the reference consumers ----------------------------------------------------------
class Reader:
    """One consumer's connection, kept between calls: connect, then read when released."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.resp: requests.Response | None = None

    def close(self) -> None:
        if self.resp is not None:
            self.resp.close()
        self.session.close()


def make_reader() -> Reader:
    return Reader()


def close_reader(reader: Reader) -> None:
    reader.close()


def connect(reader: Reader, url: str) -> Mark:
    reader.resp = reader.session.get(
        url + "/admin/events",
        headers={"Accept": "text/event-stream"},
        stream=True,
        timeout=(5.0, 60.0),
    )
    reader.resp.raise_for_status()
    return mark()


def read_baseline(reader: Reader, count: int) -> Mark:
    """The bare library loop: `SSEClient(resp)` (which iterates resp: iter_content(128))
    and `json.loads` per event."""
    assert reader.resp is not None
    seen = 0
    for event in SSEClient(cast("Iterator[bytes]", reader.resp)).events():
        json.loads(event.data)
        seen += 1
        if seen >= count:
            break
    done = mark(seen)
    reader.close()
    return done


def read_transport(reader: Reader, count: int, expected_bytes: int) -> Mark:
    """The ceiling: what requests delivers with large reads, bytes discarded."""
    assert reader.resp is not None
    received = 0
    for piece in reader.resp.iter_content(65536):
        received += len(piece)
    done = mark(count)
    reader.close()
    if received != expected_bytes:
        raise RuntimeError(f"transport read {received} bytes, expected {expected_bytes}")
    return done


def read_minimal(reader: Reader, count: int, window: float) -> tuple[Mark, Mark]:
    """The floor for any Python consumer here: the exporter's own reads (wire.receive),
    split at blank lines, json.loads and one dict update per event, and nothing else (no framing
    checks, no state); with `window` > 0 paced by the exporter's own `pacer.Pacer`. Marks
    at the start and once `count` events other than heartbeats were read."""
    assert reader.resp is not None
    pacer = Pacer(window) if window > 0 else None
    reads = wire.receive(reader.resp.raw._fp.fp, pacer)  # type: ignore[union-attr]
    counts: dict[str, int] = {}
    seen, tail = 0, b""
    start = mark()
    for data in reads:
        *blocks, tail = (tail + data).split(b"\n\n")
        for block in blocks:
            head, _, body = block.partition(b"data: ")
            if b"heartbeat" not in head:
                event = json.loads(body)
                key = str(event.get("type", event.get("model_id")))
                counts[key] = counts.get(key, 0) + 1
                seen += 1
        if seen >= count:
            break
    end = mark(seen)
    reader.close()
    return start, end


# -- the simulator ------------------------------------------------------------------
def make_sim(**kwargs: Any) -> LmxSimulator:
    sim = LmxSimulator(**kwargs)
    sim.start()
    return sim


def stop_sim(sim: LmxSimulator) -> None:
    sim.stop()


def sim_url(sim: LmxSimulator) -> str:
    return sim.url


def sim_counts(sim: LmxSimulator) -> tuple[int, int, int]:
    """(events published, live subscribers, zombie subscribers)."""
    return sim.events_published, sim.subscriber_count(), sim.zombie_count()


def wait_subscribers(sim: LmxSimulator, count: int, timeout: float = 30.0) -> bool:
    return sim.wait_for_subscribers(count, timeout)


def publish_probe(sim: LmxSimulator) -> float:
    """One small event; returns the monotonic time just before it was handed over."""
    now = time.monotonic()
    sim.publish("config_reloaded", {"routing_aliases": 0, "memory_threshold": 90})
    return now


def publish_in_window(sim: LmxSimulator, gap: float) -> float:
    """Two filler events `gap` apart make the stream busy (the second read opens a batch
    window), then the probe `gap` later lands inside that window: the longest an event
    waits by design. The fillers are events LMX sends that change no state the probe is
    timed by (a canary start). Returns the probe's publish time."""
    for _ in range(2):
        sim.publish("model_canary_started", {"model_id": FILLER_MODEL, "backend": "mlx-lm"})
        threading.Event().wait(gap)
    return publish_probe(sim)


def publish_paced(sim: LmxSimulator, count: int, rate: float, seed: int) -> tuple[float, float]:
    """`count` realistic events at `rate`/s through the simulator's real queues."""
    return paced(sim.publish_raw, frames(count, seed), rate)


def restart(sim: LmxSimulator, model: str) -> tuple[float, float]:
    """LMX restarted with a new model set: (monotonic at the stop, at the new start)."""
    sim.set_models({model: 4.0})
    stopped = time.monotonic()
    sim.stop()
    sim.start()
    return stopped, time.monotonic()
