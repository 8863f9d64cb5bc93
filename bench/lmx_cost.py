"""What the exporter's reads cost LMX's side: `python bench/lmx_cost.py [--seconds S]
[--speed K] [--json out.json]`.

The simulator runs in a process of its own, so its CPU is measured apart from the
exporter's. The exporter follows it with every interval (and LMX's heartbeat) divided by
K: S seconds stand for S x K seconds at the defaults. At the simulator, requests are
counted by route and its process CPU is read; the same simulator, followed by nobody for
S seconds, gives the floor. Requests per minute and CPU per hour are scaled back to the
default intervals. The simulator answers faster than LMX (no inference server behind it),
so its CPU is the floor of LMX's, not LMX's; the request counts are exact.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.agents import Agent
from bench.probes import make_sim, sim_url, stop_sim
from lmx_simulator import LmxSimulator
from opta_exporter.config import Config
from opta_exporter.daemon import Exporter

DEFAULTS = Config()


def sim_cpu(sim: LmxSimulator) -> float:
    return time.process_time()


def load_one(sim: LmxSimulator) -> None:
    sim.load_model("mlx-community/Qwen3-8B-4bit")


def sim_routes(sim: LmxSimulator) -> dict[str, int]:
    """GETs answered so far, by path without its query."""
    return dict(collections.Counter(path.split("?")[0] for _, path, _ in sim.requests_seen))


def _scaled(speed: float) -> Config:
    d = DEFAULTS
    return Config(
        listen_host="127.0.0.1",
        listen_port=0,
        heartbeat_interval=d.heartbeat_interval / speed,
        stale_timeout=d.stale_timeout / speed,
        snapshot_interval=d.snapshot_interval / speed,
        relay_interval=d.relay_interval / speed,
        health_interval=d.health_interval / speed,
        models_interval=d.models_interval / speed,
        diagnostics_interval=d.diagnostics_interval / speed,
        jobs_interval=d.jobs_interval / speed,
        jobs_busy_interval=d.jobs_busy_interval / speed,
    )


def run(seconds: float, speed: float) -> dict[str, Any]:
    pause = threading.Event()  # never set: a bounded wait, the run's length
    heartbeat = DEFAULTS.heartbeat_interval / speed
    options = {"host": "127.0.0.1", "port": 0, "heartbeat_interval": heartbeat}
    with Agent("lmx", make_sim, stop_sim, **options) as sim:
        sim.call(load_one)
        began = sim.call(sim_cpu)
        pause.wait(seconds)
        floor = sim.call(sim_cpu) - began
        exporter = Exporter(replace(_scaled(speed), lmx_url=sim.call(sim_url)))
        before = sim.call(sim_routes)
        began = sim.call(sim_cpu)
        exporter.start()
        try:
            pause.wait(seconds)
            cpu = sim.call(sim_cpu) - began
            after = sim.call(sim_routes)
        finally:
            exporter.stop()
    minutes = seconds * speed / 60.0  # of default-interval time
    routes = {path: (after.get(path, 0) - before.get(path, 0)) / minutes for path in after}
    per_hour = (cpu - floor) / (seconds * speed) * 3600.0
    return {
        "seconds": seconds,
        "speed": speed,
        "requests_per_minute": {p: round(n, 2) for p, n in sorted(routes.items()) if n},
        "requests_per_minute_total": round(sum(routes.values()), 2),
        "simulator_cpu_seconds_per_hour": round(per_hour, 3),
        "simulator_cpu_run_s": round(cpu, 4),
        "simulator_cpu_floor_s": round(floor, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.seconds, args.speed)
    print("| route | requests per minute at the default intervals |")
    print("|---|---|")
    for path, rate in result["requests_per_minute"].items():
        print(f"| `{path}` | {rate:.2f} |")
    print(f"| all | {result['requests_per_minute_total']:.2f} |")
    print(
        f"\nsimulator CPU answering them: {result['simulator_cpu_seconds_per_hour']:.3f} s "
        f"per hour at the defaults ({args.seconds:.0f} s at {args.speed:.0f}x)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
