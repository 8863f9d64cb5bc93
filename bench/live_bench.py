"""Measurements against the bundled LMX stand-in, each party in its own process:
prompt delivery (2), scrape cost (3), CPU at 50 events/s and on heartbeats (5), bursts
through the real 100-event queue (6), recovery after a restart (7)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from bench import probes
from bench.agents import Agent
from bench.report import FORMATS, Json, metric_value, percentile, scrape, summary
from bench.scrape_client import ScrapeClient
from lmx_simulator import LmxSimulator
from opta_exporter.daemon import Exporter

VISIBLE_TIMEOUT = 10.0
BUSY_MODELS = 5  # models with a request done between two scrapes


@contextlib.contextmanager
def lmx_and_exporter(
    sim_options: dict[str, Any] | None = None, **exporter_options: object
) -> Iterator[tuple[Agent[LmxSimulator], Agent[Exporter], str]]:
    """A simulator process and an exporter process following it, connected."""
    with Agent("lmx", probes.make_sim, probes.stop_sim, **(sim_options or {})) as sim:
        url = sim.call(probes.sim_url)
        with Agent("exporter", probes.make_exporter, probes.stop_exporter,
                   lmx_url=url, **exporter_options) as exp:  # fmt: skip
            exp.call(probes.wait_up)
            sim.call(probes.wait_subscribers, 1)
            yield sim, exp, exp.call(probes.exporter_url)


def _until_visible(client: ScrapeClient, value: float, name: str, **labels: str) -> float:
    """Scrape until /metrics shows the sample >= value; the monotonic time it did."""
    deadline = time.monotonic() + VISIBLE_TIMEOUT
    while time.monotonic() < deadline:
        seen = metric_value(scrape(client)[1], name, **labels)
        if seen is not None and seen >= value:
            return time.monotonic()
    raise TimeoutError(f"{name}{labels} did not reach {value} on /metrics")


IN_WINDOW_GAP = 0.005  # the probe follows a filler event by this much


def prompt_delivery(chunked: bool, probes_count: int, window: float) -> Json:
    """Server hands one small event to the wire -> the exporter's state -> /metrics: a lone
    event; one that lands 5 ms into a batch window two filler events opened, while
    /metrics is scraped (each scrape flushes the reader: pacer.py); and that same event
    with nobody scraping, which waits out the window by design."""
    to_state, to_metrics, in_window, in_window_state = [], [], [], []
    pause = threading.Event()
    with lmx_and_exporter({"chunked": chunked}) as (sim, exp, url), ScrapeClient(url) as s:
        reloads = 0

        def probe(publish: Callable[[LmxSimulator], float]) -> tuple[float, float]:
            nonlocal reloads
            reloads += 1
            pending = exp.send(probes.wait_state, partial(probes.config_reloads_at_least, reloads))
            return sim.call(publish), pending.result()

        in_a_window = partial(probes.publish_in_window, gap=IN_WINDOW_GAP)
        for _ in range(probes_count):
            published, arrived = probe(probes.publish_probe)
            seen = _until_visible(s, float(reloads), "opta_lmx_config_reloads_total")
            to_state.append(1e3 * (arrived - published))
            to_metrics.append(1e3 * (seen - published))
            pause.wait(window + 0.1)  # a window passes dry: the next probe is read at once
            reloads += 1
            published = sim.call(in_a_window)
            seen = _until_visible(s, float(reloads), "opta_lmx_config_reloads_total")
            in_window.append(1e3 * (seen - published))
            pause.wait(window + 0.1)
            published, arrived = probe(in_a_window)
            in_window_state.append(1e3 * (arrived - published))
            pause.wait(window + 0.1)
    return {
        "state_ms": summary(to_state, 2),
        "metrics_ms": summary(to_metrics, 2),
        "in_window_metrics_ms": summary(in_window, 2),
        "in_window_unscraped_state_ms": summary(in_window_state, 2),
    }


def scrape_cost(model_counts: tuple[int, ...], scrapes: int) -> list[Json]:
    """/metrics timed from another process, with every per-model family populated, in
    both formats: OpenMetrics (what Prometheus asks for first) and the 0.0.4 text format;
    gzip accepted, as Prometheus does. Between two scrapes, traffic on a few models
    changes their series, as a busy LMX's does between two of Prometheus's scrapes."""
    names = [f"mlx-community/bench-model-{i:03d}-4bit" for i in range(max(model_counts))]
    rows, filled = [], 0
    with lmx_and_exporter(snapshot_interval=3600.0) as (_, exp, url), ScrapeClient(url) as s:
        for count in model_counts:
            exp.call(probes.fill, names[filled:count])
            filled = count
            kept = exp.call(probes.models_admitted)
            for fmt, headers in FORMATS.items():
                for _ in range(5):
                    scrape(s, headers)  # warm-up
                timed, cpu = [], 0.0
                for n in range(scrapes):
                    busy = names[(n * BUSY_MODELS) % count :][:BUSY_MODELS]
                    exp.call(probes.traffic, busy, n)  # untimed, and not in the CPU figure
                    before = exp.call(probes.serving_cpu)
                    timed.append(scrape(s, headers))
                    cpu += exp.call(probes.serving_cpu) - before
                seconds = [t for t, _ in timed]
                rows.append({
                    "format": fmt,
                    "models_offered": count,
                    "models_kept": kept,
                    "scrapes": scrapes,
                    "median_ms": round(1e3 * percentile(seconds, 0.5), 3),
                    "p99_ms": round(1e3 * percentile(seconds, 0.99), 3),
                    "max_ms": round(1e3 * max(seconds), 3),
                    "bytes": len(timed[-1][1].encode()),
                    "cpu_ms": round(1e3 * cpu / scrapes, 3),
                })  # fmt: skip
    return rows


def relay_cost(models: int, reads: int, interval: float) -> Json:
    """The relay at `models` models: CPU per read of LMX's /admin/metrics and per writing
    of its text (once per read, at the next scrape), and what that costs per interval."""
    names = [f"mlx-community/bench-model-{i:03d}-4bit" for i in range(models)]
    with lmx_and_exporter(snapshot_interval=3600.0) as (sim, exp, _):
        sim.call(probes.record_requests, names)
        raw = exp.call(probes.relay_cost, reads)
    read, write = summary(raw["read_ms"], 2), summary(raw["write_ms"], 2)
    return {
        "models": models,
        "lines": raw["lines"],
        "read_ms": read,
        "write_ms": write,
        "interval_s": interval,
        "cpu_percent": round(100 * (read["median"] + write["median"]) / 1e3 / interval, 4),
    }


def _window(before: probes.Mark, after: probes.Mark, threads: tuple[Json, Json]) -> Json:
    wall = after.mono - before.mono
    return {
        "seconds": round(wall, 2),
        "cpu_percent": round(100 * (after.cpu - before.cpu) / wall, 4),
        "thread_cpu_percent": {
            name: round(100 * (cpu - threads[0].get(name, 0.0)) / wall, 4)
            for name, cpu in threads[1].items()
        },
    }


def cpu_cost(seconds: float, rate: float, heartbeat: float) -> Json:
    """Process CPU time of the exporter over a window, as % of one core (and per thread:
    MainThread is the harness's own agent loop, idle but for the marks)."""
    sim_options = {"heartbeat_interval": heartbeat}
    with lmx_and_exporter(
        sim_options, heartbeat_interval=heartbeat, stale_timeout=1.5 * heartbeat
    ) as (sim, exp, _):
        count = round(rate * seconds)
        threads = exp.call(probes.thread_cpus)
        start = exp.call(probes.exporter_mark)
        sim.call(probes.publish_paced, count, rate, 50)
        end = exp.call(probes.wait_events, count, 10.0)
        active = {"rate": rate, "events": end.events}
        active |= _window(start, end, (threads, exp.call(probes.thread_cpus)))
        beats = exp.call(probes.heartbeats_seen)
        threads = exp.call(probes.thread_cpus)
        start = exp.call(probes.exporter_mark)
        threading.Event().wait(seconds)
        end = exp.call(probes.exporter_mark)
        idle = {
            "heartbeat_interval_s": heartbeat,
            "heartbeats": exp.call(probes.heartbeats_seen) - beats,
        }
        idle |= _window(start, end, (threads, exp.call(probes.thread_cpus)))
    return {"active": active, "idle": idle}


def reference_cost(seconds: float, rate: float, window: float) -> Json:
    """The floor in the same run: a minimal Python reader (probes.read_minimal) of the same
    simulator at the same rate, reading every event at once and paced like the exporter."""
    out: Json = {}
    count = round(rate * seconds)
    with Agent("lmx", probes.make_sim, probes.stop_sim) as sim:
        url = sim.call(probes.sim_url)
        for name, pace in (("unpaced", 0.0), ("paced", window)):
            with Agent("reader", probes.make_reader, probes.close_reader) as ref:
                ref.call(probes.connect, url)
                sim.call(probes.wait_subscribers, 1)
                pending = ref.send(probes.read_minimal, count, pace)
                sim.call(probes.publish_paced, count, rate, 50)
                start, end = pending.result()
                out[name] = {
                    "window_s": pace,
                    "events": end.events,
                    "cpu_percent": round(100 * (end.cpu - start.cpu) / (end.mono - start.mono), 4),
                }
    return out


def bursts(count: int, size: int, rate: float, sustained_seconds: float) -> Json:
    """Bursts paced at LMX's top stream rate, then that rate held: nothing may be lost and
    the subscription must stay live (LMX turns a subscriber whose queue fills into a zombie)."""
    expected, rates = 0, []
    pause = threading.Event()
    with lmx_and_exporter() as (sim, exp, _):
        for b in range(count):
            _, took = sim.call(probes.publish_paced, size, rate, b)
            rates.append(size / took)
            expected += size
            exp.call(probes.wait_events, expected, 10.0)
            pause.wait(0.2)
        sustained = round(rate * sustained_seconds)
        _, took = sim.call(probes.publish_paced, sustained, rate, count)
        expected += sustained
        counted = exp.call(probes.wait_events, expected, 10.0).events
        published, live, zombies = sim.call(probes.sim_counts)
    return {
        "bursts": count,
        "burst_size": size,
        "burst_rate": summary(rates, 0),
        "sustained_events": sustained,
        "sustained_rate": round(sustained / took),
        "published": published,
        "counted": counted,
        "lost": published - counted,
        "zombies": zombies,
        "live_subscribers": live,
    }


def recovery(repeats: int, backoff_base: float) -> Json:
    """LMX stopped and started again (a new model set): time until /metrics shows
    `opta_lmx_up 1` and the new snapshot's model, at the first backoff step."""
    times: list[float] = []
    reloads = 0
    with lmx_and_exporter(backoff_base=backoff_base) as (sim, exp, url), ScrapeClient(url) as s:
        for k in range(repeats):
            # An event on this connection makes it healthy, so the next wait is the first step.
            reloads += 1
            sim.call(probes.publish_probe)
            exp.call(probes.wait_state, partial(probes.config_reloads_at_least, reloads))
            model = f"restarted-{k}"
            pending = exp.send(probes.wait_state, partial(probes.up_with_model, model))
            stopped, _ = sim.call(probes.restart, model)
            pending.result()
            _until_visible(s, 1.0, "opta_lmx_model_loaded", model=model, format="unknown")
            seen = _until_visible(s, 1.0, "opta_lmx_up")
            times.append(seen - stopped)
    return {"backoff_base_s": backoff_base, "seconds": summary(times, 3)}
