"""The LMX stand-in against real sockets: the live demo (lmx_simulator/demo.py) and
`python -m lmx_simulator`."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from lmx_simulator.demo import MAIN_MODEL, ODD_MODEL, DemoScenario, main, run_demo
from tests.helpers import ROOT
from tests.unit.lmx_simulator.harness import Harness, event


def test_run_demo_produces_a_live_scenario(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    stop = threading.Event()
    thread = threading.Thread(target=run_demo, args=(sim, stop, random.Random(7)))
    thread.start()
    try:
        loaded: set[str] = set()
        envelopes: set[str] = set()
        while len(loaded) < 2 or envelopes != {"status", "throughput"}:
            chunk = c.read_chunk()
            if chunk.startswith(b"data: "):
                envelopes.add(json.loads(chunk[6:])["type"])
            elif (item := event(chunk))[0] == "model_loaded":
                loaded.add(item[1]["model_id"])
    finally:
        stop.set()
        thread.join(2.0)
    assert not thread.is_alive()
    assert loaded == {MAIN_MODEL, ODD_MODEL}


def test_demo_scenario_covers_every_kind_of_event(h: Harness) -> None:
    sim = h.sim(queue_size=100_000)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    scenario = DemoScenario(sim, random.Random(3))
    for tick in range(1300):  # two minutes of demo, stepped without its pacing
        scenario.step(tick)
    sim.publish("end", {})
    names: set[str] = set()
    while "end" not in names:
        chunk = c.read_chunk()
        names.add("envelope" if chunk.startswith(b"data: ") else event(chunk)[0])
    assert names >= {
        "model_loaded",
        "model_unloaded",
        "model_ttl_evicted",
        "download_progress",
        "download_completed",
        "quantize_progress",
        "config_reloaded",
        "envelope",
    }


def test_demo_main_rejects_a_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--admin-key-file", str(tmp_path / "absent")])
    assert exc.value.code == 2


def test_module_entry_point_runs_until_sigterm(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k\n")
    command = [sys.executable, "-m", "lmx_simulator", "--port", "0"]
    command += ["--admin-key-file", str(key_file)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip().removeprefix("LMX simulator on ")
            assert requests.get(f"{url}/admin/status", timeout=3).status_code == 403
            r = requests.get(f"{url}/admin/status", headers={"X-Admin-Key": "k"}, timeout=3)
            assert r.json()["version"] == "0.1.0"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=3) == 0
        finally:
            proc.kill()  # a no-op once it has exited
