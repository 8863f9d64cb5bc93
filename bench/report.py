"""Statistics, the scrape client, the machine, the targets and the table."""

from __future__ import annotations

import math
import os
import platform
import re
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.scrape_client import ScrapeClient

Json = dict[str, Any]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float], digits: int = 3) -> Json:
    """Median and min-max of repeated runs, every run kept."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits) for v in values],
    }


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of an exposition, found by name and labels."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


# What Prometheus (2.x) sends: OpenMetrics preferred, gzip accepted.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
TEXT_HEADERS = {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "gzip"}
FORMATS = {"openmetrics": PROMETHEUS_HEADERS, "text": TEXT_HEADERS}


def scrape(client: ScrapeClient, headers: dict[str, str] | None = None) -> tuple[float, str]:
    """(seconds, body) of one GET, timed as the scraper sees it (body inflated and
    decoded); plain text unless `headers` ask otherwise."""
    return client.get(headers or TEXT_HEADERS)


class Scraper:
    """Scrapes at a fixed rate from a thread of the harness process until stopped."""

    def __init__(self, url: str, hz: float) -> None:
        """Asks as Prometheus does (OpenMetrics, gzip)."""
        self.url, self.period = url, 1.0 / hz if hz > 0 else 0.0
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def _run(self) -> None:
        with ScrapeClient(self.url) as client:
            start = time.monotonic()
            n = 0
            while not self._stop.wait(max(start + n * self.period - time.monotonic(), 0.0)):
                self.seconds.append(scrape(client, PROMETHEUS_HEADERS)[0])
                n += 1

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15.0)


def machine() -> Json:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "requests": requests.__version__,
    }


def targets(r: Json) -> list[Json]:
    """The issue's targets, each judged on this run's figures."""
    ing, cost = r["ingestion"], r["cost"]
    ratio = ing["exporter"]["ratio_to_baseline"]["median"]
    prompt = r["prompt_delivery"]
    worst = {
        k: max(prompt[k]["metrics_ms"]["max"], prompt[k]["in_window_metrics_ms"]["max"])
        for k in ("chunked", "close_delimited")
    }
    at_100 = max(
        (row for row in r["scrape"] if row["models_offered"] == 100), key=lambda row: row["p99_ms"]
    )
    rss = cost["rss"]
    heap = rss["python_blocks_after_each_block"]
    burst = r["bursts"]
    rec = r["recovery"]
    bound = rec["backoff_base_s"] + 0.5
    rows = [
        ("ingestion >= 0.8x bare baseline (required)", f"{ratio:.2f}x", ratio >= 0.8),
        ("ingestion >= 1.0x bare baseline (aim)", f"{ratio:.2f}x", ratio >= 1.0),
        ("prompt delivery <= 50 ms, chunked (max, lone or in a batch window)",
         f"{worst['chunked']:.1f} ms",
         worst["chunked"] <= 50.0),
        ("prompt delivery <= 50 ms, close-delimited (max, lone or in a batch window)",
         f"{worst['close_delimited']:.1f} ms", worst["close_delimited"] <= 50.0),
        ("<= 0.5 % of a core at 50 events/s", f"{cost['active']['cpu_percent']:.3f} %",
         cost["active"]["cpu_percent"] <= 0.5),
        ("<= 0.1 % of a core on heartbeats only", f"{cost['idle']['cpu_percent']:.3f} %",
         cost["idle"]["cpu_percent"] <= 0.1),
        (f"scrape p99 <= 10 ms at 100 models (worst format: {at_100['format']})",
         f"{at_100['p99_ms']:.2f} ms",
         at_100["p99_ms"] <= 10.0),
        ("contention costs <= 10 % of ingestion",
         f"{100 * (1 - r['contention']['ratio']['median']):.1f} %",
         r["contention"]["ratio"]["median"] >= 0.9),
        ("RSS <= 40 MB", f"{rss['peak_mb']:.2f} MB peak", rss["peak_mb"] <= 40.0),
        ("RSS flat over the run (growth after the first block <= 1 MB)",
         f"{rss['growth_after_first_mb']:+.1f} MB", rss["growth_after_first_mb"] <= 1.0),
        ("Python heap flat (blocks after the last block within 1 % of the first)",
         f"{100 * (heap[-1] / heap[0] - 1):+.2f} %", heap[-1] <= 1.01 * heap[0]),
        ("bursts: zero lost, zero zombies", f"{burst['lost']} lost, {burst['zombies']} zombies",
         burst["lost"] == 0 and burst["zombies"] == 0),
        (f"recovery <= base backoff + 0.5 s = {bound:.1f} s (median)",
         f"{rec['seconds']['median']:.2f} s", rec["seconds"]["median"] <= bound),
    ]  # fmt: skip
    return [{"target": t, "value": v, "met": bool(m)} for t, v, m in rows]


def _fmt(s: Json, unit: str = "", digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f}{unit} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def table(r: Json) -> str:
    ing = r["ingestion"]
    lines = [
        f"# {r['machine']['nproc']} cores, {r['machine']['cpu_model']}, "
        f"Python {r['machine']['python']}; mode {r['mode']}",
        f"## ingestion: {ing['events']:,} events x {ing['rounds']} rounds, "
        f"{ing['mean_event_bytes']:.0f} B/event; median (min-max)",
        "| consumer | events/s | CPU us/event | x baseline |",
        "|---|---|---|---|",
    ]
    for name in ("exporter", "exporter_scraped", "baseline", "transport"):
        row = ing[name]
        lines.append(
            f"| {row['label']} | {_fmt(row['events_per_s'])} | "
            f"{_fmt(row['cpu_us_per_event'], digits=1)} | "
            f"{_fmt(row['ratio_to_baseline'], digits=2)} |"
        )
    p, c = r["prompt_delivery"], r["cost"]
    lines += ["", "| measure | result |", "|---|---|"]
    for key in ("chunked", "close_delimited"):
        lines.append(
            f"| prompt delivery, {key.replace('_', '-')}: to /metrics | "
            f"{_fmt(p[key]['metrics_ms'], ' ms', 1)} |"
        )
        lines.append(
            f"| prompt delivery, {key.replace('_', '-')}: 5 ms into a batch window, to /metrics | "
            f"{_fmt(p[key]['in_window_metrics_ms'], ' ms', 1)} |"
        )
        lines.append(
            f"| (no target) the same event, nobody scraping: to the exporter's state | "
            f"{_fmt(p[key]['in_window_unscraped_state_ms'], ' ms', 1)} |"
        )
    for row in r["scrape"]:
        lines.append(
            f"| scrape, {row['format']}, {row['models_offered']} models "
            f"({row['models_kept']} kept) | "
            f"median {row['median_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
            f"{row['bytes']:,} B, {row['cpu_ms']:.2f} ms CPU |"
        )
    rel = r["relay"]
    lines.append(
        f"| relay, LMX's /admin/metrics at {rel['models']} models ({rel['lines']:,} lines "
        f"relayed): CPU to read and parse / to write for /metrics | "
        f"{_fmt(rel['read_ms'], ' ms', 1)} / {_fmt(rel['write_ms'], ' ms', 1)}; every "
        f"{rel['interval_s']:g} s: {rel['cpu_percent']:.3f} % of a core |"
    )
    cont = r["contention"]
    lines += [
        f"| contention: ingestion with /metrics at 10 Hz, x without | "
        f"{_fmt(cont['ratio'], digits=3)} |",
        f"| CPU at 50 events/s ({c['active']['seconds']:.0f} s) | "
        f"{c['active']['cpu_percent']:.3f} % of a core |",
        f"| CPU on heartbeats only ({c['idle']['seconds']:.0f} s, "
        f"{c['idle']['heartbeats']} heartbeats) | {c['idle']['cpu_percent']:.3f} % of a core |",
        f"| the floor: a minimal Python reader at {c['active']['rate']:g} events/s, each event "
        f"at once / paced ({1e3 * c['floor']['paced']['window_s']:g} ms) | "
        f"{c['floor']['unpaced']['cpu_percent']:.3f} % / {c['floor']['paced']['cpu_percent']:.3f} "
        "% of a core |",
        f"| RSS after start / after {c['rss']['events']:,} events / peak | "
        f"{c['rss']['start_mb']:.1f} / {c['rss']['end_mb']:.1f} / {c['rss']['peak_mb']:.1f} MB |",
    ]
    b, rec = r["bursts"], r["recovery"]
    lines += [
        f"| bursts: {b['bursts']} x {b['burst_size']:,} at {_fmt(b['burst_rate'])}/s, then "
        f"{b['sustained_events']:,} at {b['sustained_rate']:,.0f}/s | "
        f"{b['published']:,} published, {b['counted']:,} counted, {b['lost']} lost, "
        f"{b['zombies']} zombies |",
        f"| recovery after an LMX restart, backoff base {rec['backoff_base_s']:g} s | "
        f"{_fmt(rec['seconds'], ' s', 2)} |",
        "",
        "| target | this run | met |",
        "|---|---|---|",
    ]
    lines += [
        f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |" for t in r["targets"]
    ]
    return "\n".join(lines)
