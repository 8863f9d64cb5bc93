"""What a live viewer costs: `python bench/live_cost.py [--seconds S] [--rounds N]
[--models M]`.

The exporter runs as its own process (`python -m opta_exporter`, default intervals)
against the simulator in this one, which loads M models and records a request a second
on each, so the relay has tokens to count, in total and per model. Its CPU is read from
/proc/<pid>/stat over S seconds with nobody on the live view, then S seconds with one
browser-like viewer reading /api/live/events, alternating for N rounds; and the
simulator counts the relay's reads in each span (one a second while watched, one per
--lmx.relay-interval otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import requests

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lmx_simulator import LmxSimulator

TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _relay_reads(sim: LmxSimulator) -> int:
    return sum(1 for _, path, _ in sim.requests_seen if path.startswith("/admin/metrics"))


class Viewer:
    """Reads the live stream as a browser's EventSource does, until closed."""

    def __init__(self, url: str) -> None:
        self._resp = requests.get(url, stream=True, timeout=30)
        self._resp.raise_for_status()
        self.events = 0
        self.bytes = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._resp.iter_lines():
                self.events += line.startswith(b"event:")
                self.bytes += len(line) + 1
        except (requests.RequestException, AttributeError, ValueError):
            return  # closed under it

    def close(self) -> None:
        self._resp.close()
        self._thread.join(5.0)


def run(seconds: float, rounds: int, models: int = 1) -> dict[str, Any]:
    stop = threading.Event()
    names = [f"mlx-community/bench-model-{i:03}" for i in range(models)]
    with LmxSimulator() as sim:
        for name in names:
            sim.load_model(name)

        def traffic() -> None:
            while not stop.wait(1.0):
                for i, name in enumerate(names):
                    sim.record_request(name, completion_tokens=40 + i)

        feeder = threading.Thread(target=traffic, daemon=True)
        feeder.start()
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "opta_exporter", "--lmx.url", sim.url,
             "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"],
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):  # up to ~10 s for the process to serve
                try:
                    if requests.get(base + "/-/healthy", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    stop.wait(0.1)
            spans: dict[str, list[dict[str, float]]] = {"none": [], "one viewer": []}
            for _ in range(rounds):
                for kind, done in spans.items():
                    viewer = Viewer(base + "/api/live/events") if kind != "none" else None
                    cpu, reads = _cpu_seconds(proc.pid), _relay_reads(sim)
                    stop.wait(seconds)
                    used = _cpu_seconds(proc.pid) - cpu
                    span = {
                        "cpu_percent": round(100.0 * used / seconds, 3),
                        "relay_reads_per_minute": round(
                            (_relay_reads(sim) - reads) * 60.0 / seconds, 1
                        ),
                    }
                    if viewer is not None:
                        span["events_per_second"] = round(viewer.events / seconds, 2)
                        span["stream_kib_per_second"] = round(viewer.bytes / 1024 / seconds, 1)
                        viewer.close()
                    done.append(span)
        finally:
            stop.set()
            proc.terminate()
            proc.wait(10)
            feeder.join(5.0)
    return {"seconds": seconds, "rounds": rounds, "models": models, "spans": spans}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.seconds, args.rounds, args.models)
    print(f"{args.models} model(s), each serving a request a second")
    print("| live view | exporter CPU, % of a core | relay reads a minute | stream KiB/s |")
    print("|---|---|---|---|")
    for kind, spans in result["spans"].items():
        cpus = sorted(s["cpu_percent"] for s in spans)
        reads = sorted(s["relay_reads_per_minute"] for s in spans)
        print(
            f"| {kind} | {cpus[len(cpus) // 2]:.3f} ({cpus[0]:.3f}-{cpus[-1]:.3f}) "
            f"| {reads[len(reads) // 2]:.1f} "
            f"| {max(s.get('stream_kib_per_second', 0.0) for s in spans):.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
