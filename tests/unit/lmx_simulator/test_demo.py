"""The LMX stand-in against real sockets: the live demo (lmx_simulator/demo.py) and
`python -m lmx_simulator`."""

from __future__ import annotations

import itertools
import random
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from lmx_simulator import LmxSimulator
from lmx_simulator.demo import MAIN_MODEL, ODD_MODEL, DemoScenario, main, run_demo
from tests.helpers import ROOT
from tests.unit.lmx_simulator.harness import LMX_EVENT_TYPES, Harness, event

END = "test_end"  # the test's own marker, published after the scenario
RELAY_READ_TICKS = 150  # the exporter's default 15 s between reads of /admin/metrics


def completion_tokens(sim: LmxSimulator) -> int:
    text = requests.get(f"{sim.url}/admin/metrics", timeout=3).text
    found = re.search(r"^lmx_completion_tokens_total (\d+)$", text, re.MULTILINE)
    assert found is not None
    return int(found[1])


def test_run_demo_produces_a_live_scenario(h: Harness) -> None:
    sim = h.sim()
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    stop = threading.Event()
    thread = threading.Thread(target=run_demo, args=(sim, stop, random.Random(7)))
    thread.start()
    try:
        loaded: set[str] = set()
        while len(loaded) < 2:
            if (item := event(c.read_chunk()))[0] == "model_loaded":
                loaded.add(item[1]["model_id"])
    finally:
        stop.set()
        thread.join(2.0)
    assert not thread.is_alive()
    assert loaded == {MAIN_MODEL, ODD_MODEL}


def test_demo_scenario_covers_lmx_events_and_no_others(h: Harness) -> None:
    sim = h.sim(queue_size=100_000)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    scenario = DemoScenario(sim, random.Random(3))
    for tick in range(1500):  # two and a half minutes of demo, stepped without its pacing
        scenario.step(tick)
    sim.publish(END, {})
    seen: list[tuple[str, dict[str, object]]] = []
    while (item := event(c.read_chunk()))[0] != END:
        seen.append(item)
    names = {name for name, _ in seen}
    assert names <= LMX_EVENT_TYPES
    assert names >= {
        "model_loaded",
        "model_unloaded",
        "model_ttl_evicted",
        "model_readiness_changed",
        "download_completed",
        "download_failed",
        "quantize_progress",
        "config_reloaded",
    }
    assert any(data.get("state") == "quarantined" for _, data in seen)


def test_demo_requests_grow_the_completion_token_counter_at_a_varying_rate(h: Harness) -> None:
    """What an exporter reading /admin/metrics every 15 s turns into tokens/s."""
    sim = h.sim()
    scenario = DemoScenario(sim, random.Random(5))
    counts = [completion_tokens(sim)]
    for first in range(0, 4 * RELAY_READ_TICKS, RELAY_READ_TICKS):
        for tick in range(first, first + RELAY_READ_TICKS):
            scenario.step(tick)
        counts.append(completion_tokens(sim))
    grown = [after - before for before, after in itertools.pairwise(counts)]
    assert min(grown) > 0
    assert len(set(grown)) > 1


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
