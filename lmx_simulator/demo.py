"""The live demo behind `python -m lmx_simulator`: a busy LMX to point the exporter at.

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
import time
from collections.abc import Iterator
from pathlib import Path

from lmx_simulator.simulator import LmxSimulator

TICK_SEC = 0.1  # throughput envelopes at ~10 Hz, like the dashboard dialect
MAIN_MODEL = "mlx-community/Qwen3-8B-4bit"
ODD_MODEL = '/models/we"ird\\x.gguf'
ROTATING_MODEL = "mlx-community/Llama-3.2-3B-Instruct-4bit"
REPOS = ("mlx-community/gemma-3-12b-it-4bit", "bartowski/Mistral-Small-24B-GGUF")
UNLOAD_REASONS = ("ttl", "lru", "manual")
# (first tick, period in ticks) of each recurring step
STATUS_EVERY, ROTATE_EVERY, DOWNLOAD_EVERY = (0, 50), (150, 300), (100, 450)
QUANTIZE_EVERY, CONFIG_EVERY, IN_FLIGHT_EVERY = (250, 600), (200, 400), (0, 10)


def _due(tick: int, schedule: tuple[int, int]) -> bool:
    first, period = schedule
    return tick >= first and (tick - first) % period == 0


def _download(sim: LmxSimulator, rng: random.Random, number: int) -> Iterator[None]:
    """`download_progress` is documented but not emitted by LMX yet; the demo sends it anyway."""
    download_id, repo_id, started = f"dl-{number:04d}", rng.choice(REPOS), time.monotonic()
    percent = 0.0
    while percent < 100.0:
        percent = min(100.0, percent + rng.uniform(2.0, 9.0))
        sim.publish(
            "download_progress",
            {"download_id": download_id, "repo_id": repo_id, "progress_percent": round(percent, 1)},
        )
        yield
    local_path = f"~/.cache/huggingface/hub/models--{repo_id.replace('/', '--')}"
    sim.publish(
        "download_completed",
        {
            "download_id": download_id,
            "repo_id": repo_id,
            "local_path": local_path,
            "duration_sec": round(time.monotonic() - started, 2),
        },
    )


def _quantize(sim: LmxSimulator, rng: random.Random) -> Iterator[None]:
    percent = 0
    while percent < 100:
        sim.publish(
            "quantize_progress",
            {"model_id": MAIN_MODEL, "status": "quantizing", "percent": percent},
        )
        percent = min(100, percent + rng.randint(5, 15))
        yield from (None for _ in range(3))
    sim.publish(
        "quantize_progress", {"model_id": MAIN_MODEL, "status": "completed", "percent": 100}
    )


class DemoScenario:
    """Mutable scenario state; step() does a bounded amount of work per tick."""

    def __init__(self, sim: LmxSimulator, rng: random.Random) -> None:
        self.sim, self.rng = sim, rng
        self.loaded = [MAIN_MODEL, ODD_MODEL]
        self.jobs: list[Iterator[None]] = []
        self.rotations = self.downloads = self.peak_ticks = 0
        sim.load_model(MAIN_MODEL, fmt="mlx", memory_gb=4.6, duration_sec=3.2)
        sim.load_model(ODD_MODEL, fmt="gguf", memory_gb=7.9, duration_sec=5.4)

    def tokens_per_second(self, tick: int) -> float:
        if self.peak_ticks == 0 and self.rng.random() < 0.01:
            self.peak_ticks = self.rng.randint(5, 20)
        peak = 2.5 if self.peak_ticks else 1.0
        self.peak_ticks = max(self.peak_ticks - 1, 0)
        base = 42.0 + 12.0 * math.sin(tick / 40.0)
        return round(max(self.rng.gauss(base * peak, 3.0), 0.0), 2)

    def step(self, tick: int) -> None:
        sim, rng = self.sim, self.rng
        tps = self.tokens_per_second(tick)
        sim.publish_envelope(
            "throughput", {"timestamp": int(time.time() * 1000), "tokensPerSecond": tps}
        )
        if rng.random() < 0.35:
            latency = rng.lognormvariate(0.0, 0.8)
            sim.record_request(
                rng.choice(self.loaded),
                latency_sec=round(latency, 3),
                prompt_tokens=rng.randint(20, 2000),
                completion_tokens=rng.randint(10, 800),
                error=rng.random() < 0.03,
                stream=rng.random() < 0.6,
                ttft_sec=round(latency * 0.2, 3),
                tokens_per_second=tps,
            )
        if _due(tick, IN_FLIGHT_EVERY):
            sim.set_in_flight(rng.randint(0, 5))
        if _due(tick, STATUS_EVERY):
            sim.publish_status_envelope()
        if _due(tick, ROTATE_EVERY):
            self.rotate()
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

    def rotate(self) -> None:
        """Load the third model, or unload it with the next reason in ttl → lru → manual."""
        if ROTATING_MODEL not in self.loaded:
            self.sim.load_model(ROTATING_MODEL, memory_gb=2.1, duration_sec=1.8)
            self.loaded.append(ROTATING_MODEL)
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
    parser.add_argument(
        "--request-events",
        action="store_true",
        help="emit request_completed events (documented, not emitted by LMX)",
    )
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
        args.host,
        args.port,
        admin_key=key,
        heartbeat_interval=args.heartbeat_interval,
        emit_request_events=args.request_events,
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
