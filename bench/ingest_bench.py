"""Measurements 1, 4 and the memory half of 5: consumers of the same bytes from the feed.

Each run is a fresh child process (no warm caches carried between consumers) reading one
body from the feed process: the exporter (its real StreamConsumer, whole path to the
state a scrape reads), the exporter while /metrics is scraped at 10 Hz, the bare baseline
(`SSEClient(resp)` + `json.loads`) and the transport ceiling (`iter_content(65536)`).
Rounds interleave the consumers, so a slow minute of the machine hits all of them.
"""

from __future__ import annotations

from collections.abc import Callable

from bench import probes
from bench.agents import Agent
from bench.feed import FeedInfo, FeedServer, release
from bench.report import Json, Scraper, percentile, scrape, summary
from bench.scrape_client import ScrapeClient

NO_RECONNECT = {"backoff_base": 120.0, "backoff_cap": 120.0, "snapshot_interval": 3600.0}
LABELS = {
    "exporter": "exporter (StreamConsumer -> state)",
    "exporter_scraped": "exporter, /metrics at 10 Hz",
    "baseline": "bare baseline: SSEClient(resp) + json.loads",
    "transport": "transport: iter_content(65536)",
}
Run = tuple[probes.Mark, probes.Mark, list[float]]  # start, end, scrape seconds


def _events_on_metrics(url: str) -> float:
    with ScrapeClient(url) as client:
        text = scrape(client)[1]
    total = 0.0
    for line in text.splitlines():
        if line.startswith("opta_lmx_events_total{") and 'event="heartbeat"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _exporter(feed: Agent[FeedServer], info: FeedInfo, scrape_hz: float) -> Run:
    with Agent("exporter", probes.make_exporter, probes.stop_exporter,
               lmx_url=info.url, **NO_RECONNECT) as exp:  # fmt: skip
        exp.call(probes.wait_up)
        url = exp.call(probes.exporter_url)
        scraper = Scraper(url, scrape_hz)
        start = exp.call(probes.exporter_mark)
        feed.call(release, 1)
        if scrape_hz:
            with scraper:
                end = exp.call(probes.wait_events, info.events)
        else:
            end = exp.call(probes.wait_events, info.events)
        if end.events != info.events or _events_on_metrics(url) != info.events:
            raise RuntimeError(f"exporter counted {end.events} of {info.events} events")
        return start, end, scraper.seconds


def _reader(read: Callable[..., probes.Mark], *extra: int) -> Callable[..., Run]:
    def run(feed: Agent[FeedServer], info: FeedInfo, scrape_hz: float) -> Run:
        with Agent("reader", probes.make_reader, probes.close_reader) as reader:
            start = reader.call(probes.connect, info.url)
            feed.call(release, 1)
            end = reader.call(read, info.events, *extra)
            return start, end, []

    return run


def ingestion(feed: Agent[FeedServer], info: FeedInfo, rounds: int) -> tuple[Json, Json]:
    """(ingestion, contention) results."""
    consumers: dict[str, tuple[Callable[..., Run], float]] = {
        "exporter": (_exporter, 0.0),
        "exporter_scraped": (_exporter, 10.0),
        "baseline": (_reader(probes.read_baseline), 0.0),
        "transport": (_reader(probes.read_transport, info.body_bytes), 0.0),
    }
    order = list(consumers)
    rates: dict[str, list[float]] = {k: [] for k in order}
    cpu: dict[str, list[float]] = {k: [] for k in order}
    thread_cpu: list[float] = []
    scrapes: list[float] = []
    # The two exporter runs go side by side, first one then the other, so the ratio that
    # contention is made of compares runs seconds apart, not a round's ends.
    units = [["exporter", "exporter_scraped"], ["baseline"], ["transport"]]
    for r in range(rounds):
        turn = units[r % len(units) :] + units[: r % len(units)]
        for name in [n for unit in turn for n in (unit[::-1] if r % 2 else unit)]:
            run, hz = consumers[name]
            start, end, seconds = run(feed, info, hz)
            rates[name].append(info.events / (end.mono - start.mono))
            cpu[name].append(1e6 * (end.cpu - start.cpu) / info.events)
            if name == "exporter":
                thread_cpu.append(1e6 * (end.thread_cpu - start.thread_cpu) / info.events)
            scrapes += seconds
    result: Json = {
        "events": info.events,
        "rounds": rounds,
        "mean_event_bytes": info.body_bytes / info.events,
    }
    for name in order:
        ratios = [a / b for a, b in zip(rates[name], rates["baseline"], strict=True)]
        result[name] = {
            "label": LABELS[name],
            "events_per_s": summary(rates[name], 0),
            "cpu_us_per_event": summary(cpu[name], 2),
            "ratio_to_baseline": summary(ratios),
        }
    result["exporter"]["stream_thread_cpu_us_per_event"] = summary(thread_cpu, 2)
    pairs = zip(rates["exporter_scraped"], rates["exporter"], strict=True)
    contention: Json = {
        "ratio": summary([a / b for a, b in pairs]),
        "scrape_hz": 10,
        "scrapes": len(scrapes),
        "scrape_ms_under_load": {
            "median": round(1e3 * percentile(scrapes, 0.5), 2) if scrapes else None,
            "p99": round(1e3 * percentile(scrapes, 0.99), 2) if scrapes else None,
        },
    }
    return result, contention


def memory(feed: Agent[FeedServer], info: FeedInfo, repetitions: int) -> Json:
    """RSS after start and after each body of events, up to `repetitions` bodies."""
    with Agent("exporter", probes.make_exporter, probes.stop_exporter,
               lmx_url=info.url, **NO_RECONNECT) as exp:  # fmt: skip
        start = exp.call(probes.wait_up)
        feed.call(release, repetitions)
        marks = [exp.call(probes.wait_events, info.events * k) for k in range(1, repetitions + 1)]
    end = marks[-1]
    total = info.events * repetitions
    if end.events != total:
        raise RuntimeError(f"exporter counted {end.events} of {total} events")
    mb = 1 / (1 << 20)
    return {
        "events": total,
        "start_mb": round(start.rss * mb, 2),
        "after_each_block_mb": [round(m.rss * mb, 2) for m in marks],
        "end_mb": round(end.rss * mb, 2),
        "peak_mb": round(max(m.peak_rss for m in marks) * mb, 2),
        "growth_after_first_mb": round((end.rss - marks[0].rss) * mb, 2),
        "python_blocks_start": start.blocks,
        "python_blocks_after_each_block": [m.blocks for m in marks],
        "events_per_s": round(total / (end.mono - start.mono)),
        "cpu_us_per_event": round(1e6 * (end.cpu - start.cpu) / total, 2),
    }
