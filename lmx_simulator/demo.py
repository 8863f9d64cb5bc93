"""The live demo behind `python -m lmx_simulator`: a busy LMX to point the exporter at.

It does only what a running LMX does: requests that move the /admin/metrics counters and
publish nothing (the completion-token counter grows at a rate that swells and bursts, so a
rate computed from two reads visibly moves), loads and unloads, downloads and quantize
jobs whose progress is in the listings only, now and then a quarantine or a config reload.
Every step is bounded and paced by `stop.wait()`, so SIGINT/SIGTERM end it within one tick.
The second model's id holds a `"` and a `\\` on purpose: LMX's own /admin/metrics breaks on it.
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from lmx_simulator.jobs import GIB
from lmx_simulator.simulator import LmxSimulator

TICK_SEC = 0.1
MAIN_MODEL = "mlx-community/Qwen3-8B-4bit"
ODD_MODEL = '/models/we"ird\\x.gguf'
ROTATING_MODEL = "mlx-community/Llama-3.2-3B-Instruct-4bit"
REPOS = ("mlx-community/gemma-3-12b-it-4bit", "bartowski/Mistral-Small-24B-GGUF")
CLIENTS = ("opta-cli", "open-webui", None)  # X-Client-Id, or none sent
UNLOAD_REASONS = ("ttl", "lru", "manual")
FAILED_DOWNLOAD_EVERY = 4  # every fourth download fails half-way
# (first tick, period in ticks) of each recurring step; the rotating model is loaded
# during [150, 450) + 600k, so the quarantine always finds it loaded
ROTATE_EVERY, DOWNLOAD_EVERY, QUANTIZE_EVERY = (150, 300), (100, 450), (250, 600)
CONFIG_EVERY, IN_FLIGHT_EVERY, QUARANTINE_EVERY = (200, 400), (0, 10), (900, 1200)
REQUEST_CHANCE = 0.1  # per tick: about one finished request a second
SWELL_TICKS = 300.0  # the base rate's sine: a period of about three minutes
BURST_CHANCE, BURST_TICKS = 0.001, (100, 300)  # bursts of 10-30 s at 2.5x


def _due(tick: int, schedule: tuple[int, int]) -> bool:
    first, period = schedule
    return tick >= first and (tick - first) % period == 0


def _download(sim: LmxSimulator, rng: random.Random, number: int) -> Iterator[None]:
    """A download as LMX runs one: progress in /admin/models/downloads only, and a single
    event when it ends."""
    total, files = rng.randint(2, 16) * GIB, rng.randint(4, 12)
    download_id = sim.start_download(rng.choice(REPOS), total_bytes=total, files_total=files)
    fails_at = total // 2 if number % FAILED_DOWNLOAD_EVERY == 0 else total + 1
    done = 0
    while done < total:
        yield
        done = min(total, done + int(total * rng.uniform(0.02, 0.09)))
        if done >= fails_at:
            sim.fail_download(download_id, "Connection reset by peer")
            return
        sim.advance_download(download_id, done, files_completed=files * done // total)
    sim.finish_download(download_id)


def _quantize(sim: LmxSimulator, rng: random.Random) -> Iterator[None]:
    """A quantize job: the stream hears of it at the start and the end, nothing between."""
    job_id = sim.start_quantize(MAIN_MODEL, bits=rng.choice((4, 8)))
    for _ in range(rng.randint(100, 400)):
        yield
    sim.finish_quantize(job_id)


class DemoScenario:
    """Mutable scenario state; step() does a bounded amount of work per tick."""

    def __init__(self, sim: LmxSimulator, rng: random.Random) -> None:
        self.sim, self.rng = sim, rng
        self.loaded = [MAIN_MODEL, ODD_MODEL]
        self.quarantined: set[str] = set()  # LMX routes no request to these
        self.jobs: list[Iterator[None]] = []
        self.rotations = self.downloads = self.burst_ticks = 0
        self.tokens_due = 0.0  # generated but not yet counted: the next request's share
        sim.load_model(MAIN_MODEL, fmt="mlx", memory_gb=4.6, duration_sec=3.2)
        sim.load_model(ODD_MODEL, fmt="gguf", memory_gb=7.9, duration_sec=5.4)

    def tokens_per_second(self, tick: int) -> float:
        """The generation rate the requests add up to; it changes over tens of seconds
        so that reads of the counter 15 s apart see it change."""
        if self.burst_ticks == 0 and self.rng.random() < BURST_CHANCE:
            self.burst_ticks = self.rng.randint(*BURST_TICKS)
        burst = 2.5 if self.burst_ticks else 1.0
        self.burst_ticks = max(self.burst_ticks - 1, 0)
        base = 42.0 + 12.0 * math.sin(tick / SWELL_TICKS)
        return max(self.rng.gauss(base * burst, 3.0), 0.0)

    def step(self, tick: int) -> None:
        sim, rng = self.sim, self.rng
        tps = self.tokens_per_second(tick)
        self.tokens_due += tps * TICK_SEC
        if rng.random() < REQUEST_CHANCE:
            self.request(tps)
        if _due(tick, IN_FLIGHT_EVERY):
            wanted, limit = rng.randint(0, sim.max_concurrent + 1), sim.max_concurrent
            sim.set_in_flight(min(wanted, limit), queued=max(wanted - limit, 0))  # a queue
        if _due(tick, ROTATE_EVERY):
            self.rotate()
        if _due(tick, QUARANTINE_EVERY) and ROTATING_MODEL in self.loaded:
            sim.quarantine_model(
                ROTATING_MODEL, crash_count=rng.randint(2, 4), last_failure_reason="Metal OOM"
            )
            self.quarantined.add(ROTATING_MODEL)
        if _due(tick, DOWNLOAD_EVERY):
            self.downloads += 1
            self.jobs.append(_download(sim, rng, self.downloads))
        if _due(tick, QUANTIZE_EVERY):
            self.jobs.append(_quantize(sim, rng))
        if _due(tick, CONFIG_EVERY):
            sim.publish(
                "config_reloaded",
                {"routing_aliases": rng.randint(0, 6), "memory_threshold": 90, "log_level": "INFO"},
            )
        self.jobs = [job for job in self.jobs if next(job, StopIteration) is not StopIteration]

    def request(self, tps: float) -> None:
        """A finished request carrying the tokens generated since the last one; a failed
        request carries none (they wait for the next)."""
        rng = self.rng
        routable = [m for m in self.loaded if m not in self.quarantined]
        error = rng.random() < 0.03
        tokens = 0 if error else int(self.tokens_due)
        self.tokens_due -= tokens
        prefill = rng.lognormvariate(-1.5, 0.6)
        self.sim.record_request(
            rng.choice(routable),
            latency_sec=round(prefill + tokens / max(tps, 1.0), 3),
            prompt_tokens=rng.randint(20, 2000),
            completion_tokens=tokens,
            error=error,
            stream=rng.random() < 0.6,
            client_id=rng.choice(CLIENTS),
        )

    def rotate(self) -> None:
        """Load the third model, or unload it with the next reason in ttl → lru → manual."""
        if ROTATING_MODEL not in self.loaded:
            self.sim.load_model(ROTATING_MODEL, memory_gb=2.1, duration_sec=1.8)
            self.loaded.append(ROTATING_MODEL)
            self.quarantined.discard(ROTATING_MODEL)  # a fresh load is routable again
            return
        reason = UNLOAD_REASONS[self.rotations % len(UNLOAD_REASONS)]
        self.rotations += 1
        if reason == "ttl":
            self.sim.publish(
                "model_ttl_evicted", {"model_id": ROTATING_MODEL, "idle_seconds": 600.0}
            )
        self.sim.unload_model(ROTATING_MODEL, reason=reason)
        self.loaded.remove(ROTATING_MODEL)


def run_demo(sim: LmxSimulator, stop: threading.Event, rng: random.Random) -> None:
    """Drive `sim` (already started) until `stop` is set."""
    scenario, tick = DemoScenario(sim, rng), 0
    while not stop.is_set():
        scenario.step(tick)
        tick += 1
        stop.wait(TICK_SEC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lmx_simulator",
        description="Run a simulated Opta LMX with a live scenario.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1234)
    parser.add_argument("--admin-key-file", type=Path, help="require the key in this file")
    parser.add_argument("--heartbeat-interval", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.heartbeat_interval <= 0:
        parser.error("--heartbeat-interval must be positive")
    key: str | None = None
    if args.admin_key_file is not None:
        try:
            key = args.admin_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            parser.error(f"cannot read --admin-key-file: {exc.strerror}")
        if not key:
            parser.error("--admin-key-file is empty")
    sim = LmxSimulator(
        args.host, args.port, admin_key=key, heartbeat_interval=args.heartbeat_interval
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda _signum, _frame: stop.set())
    try:
        sim.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"LMX simulator on {sim.url}", flush=True)
    try:
        run_demo(sim, stop, random.Random(args.seed))  # noqa: S311 (demo data, not secrets)
    finally:
        sim.stop()
    return 0
