"""Soak: events at a high rate with a fault every few seconds, then every counter is held
against what the fault server really sent.

The fault server records, per connection, each event it wrote whole and each change of
its model set that no event carried (dropped events, a half-written event, a restart with
other models). At the end the exporter must have counted exactly the events written
(none lost, on any connection that delivered them), and `state_drift` must equal the
dropped changes, each corrected by the snapshot of the next connection.

`test_soak_short` (~6 s) runs in the default suite. `test_soak` (~60 s) is marked `soak`
and runs only when selected: `pytest -m soak`, or with `OPTA_SOAK=1` in the environment.
`OPTA_SOAK_SEED` replays a run; the seed is in every failure message.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from opta_exporter.core.health import RECONNECT_REASONS, ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.metrics.collector import LmxCollector
from opta_exporter.store import Store
from tests.conftest import Gate
from tests.helpers import Samples, parse
from tests.integration.faults.faulty_lmx import FaultyLmx
from tests.integration.faults.faulty_rig import KEY, Rig, start_rig
from tests.integration.faults.faulty_script import (
    AwaitSnapshot,
    Big,
    Cut,
    Drop,
    Effect,
    End,
    Outage,
    Pause,
    Raw,
    Reply,
    Script,
    Send,
    Stall,
    Step,
    reply,
)

POOL = ["mlx-community/Qwen3-8B-4bit", 'gguf/we"ird\\x.gguf', "m-\u00df", "m-\U0001f980"]
POOL += ["a", "b", "c", "d"]
FAULTS = ("healthy", "cut", "stall", "oversize", "garbage", "503", "html", "outage")
REASON = {"stall": "stale", "503": "http_error", "html": "protocol"}  # the rest: eof
GARBAGE = b"event: heartbeat\ndata: {broken\n\n"
BURST = 20  # events written back to back between two pauses
STALE = 1.0


class Nap(Gate):
    """Records every backoff wait like Gate, and really waits (until woken at teardown)."""

    def __init__(self) -> None:
        super().__init__()
        self.wake = threading.Event()

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.wake.wait(seconds)


@dataclass
class Plan:
    """Scripts for consecutive connections, built against the model set they leave."""

    rng: random.Random
    rate: float
    scripts: list[Script] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    models: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # of events planned

    def change(self, tainted: set[str]) -> Send | None:
        """A load or unload that really changes LMX's model set, on an untainted model."""
        rng, loaded = self.rng, sorted(self.models.keys() - tainted)
        free = sorted(set(POOL) - self.models.keys() - tainted)
        if not loaded and not free:
            return None
        model = rng.choice(loaded + free)
        if model in self.models:
            del self.models[model]
            reason = rng.choice(["manual", "ttl", "lru"])
            payload: dict[str, object] = {"model_id": model, "reason": reason}
            return Send("model_unloaded", payload, Effect("unload", model))
        gb = self.models[model] = round(rng.uniform(0.5, 8.0), 2)
        fmt, duration = rng.choice(["mlx", "gguf"]), round(rng.uniform(0.1, 90.0), 3)
        payload = {"model_id": model, "format": fmt, "memory_gb": gb, "duration_sec": duration}
        return Send("model_loaded", payload, Effect("load", model, gb))

    def request(self) -> Send:
        """The bulk of the stream: a compatibility check, as LMX records one per load and
        per canary (a running LMX sends no event per request)."""
        rng = self.rng
        payload: dict[str, object] = {
            "model_id": rng.choice(POOL),
            "backend": rng.choice(["mlx", "gguf"]),
            "outcome": "fail" if rng.random() < 0.05 else "pass",
            "reason": "",
            "ts": time.time(),
            "metadata": {},
        }
        return Send("model_compatibility_recorded", payload)

    def event(self, tainted: set[str]) -> Step:
        roll = self.rng.random()
        if roll < 0.04 and (send := self.change(tainted)) is not None:
            if send.effect is not None and self.rng.random() < 0.25:
                tainted.add(send.effect.model)  # nothing may touch it until the resync
                return Drop(send.effect)
            return send
        if roll < 0.1:
            return Send("heartbeat", {"timestamp": time.time()})
        if roll < 0.11:
            return Send("config_reloaded", {"routing_aliases": 2, "memory_threshold": 90})
        return self.request()

    def events(self, seconds: float, tainted: set[str]) -> list[Step]:
        steps: list[Step] = []
        for i in range(max(1, int(seconds * self.rate))):
            if i % BURST == BURST - 1:
                steps.append(Pause(BURST / self.rate))
            steps.append(self.event(tainted))
        return steps

    def add(self, fault: str, seconds: float) -> None:
        self.faults[fault] += 1
        if fault == "503":
            self.scripts.append(reply(503, ("Retry-After", "1")))
            return
        if fault == "html":
            page = Reply(200, body=b"<html>Sign in</html>", content_type="text/html")
            self.scripts.append(Script(reply=page))
            return
        self.seconds += seconds
        tainted: set[str] = set()
        steps = [AwaitSnapshot(), *self.events(seconds / 2, tainted)]
        if fault == "garbage":
            steps.append(Raw(GARBAGE))
        elif fault == "oversize":
            steps.append(Big(1_500_000))
        steps += self.events(seconds / 2, tainted)
        if fault == "cut":
            steps.append(Cut(self.change(tainted) or self.request()))
        elif fault == "stall":
            steps.append(Stall(timeout=10 * STALE))
        elif fault == "outage":  # LMX comes back with one model less and one more
            for _ in range(2):
                if (send := self.change(tainted)) is not None and send.effect is not None:
                    tainted.add(send.effect.model)
            steps.append(Outage(0.3, dict(self.models)))
        self.scripts.append(Script([*steps, End()]))


def expected_counts(lmx: FaultyLmx, plan: Plan) -> dict[str, dict[tuple[str, ...], float]]:
    sent = [step for record in lmx.records for step in record.sent]
    events = Counter(step.name for step in sent)
    events["heartbeat"] += plan.faults["garbage"]
    out: dict[str, Counter[tuple[str, ...]]] = {
        "opta_lmx_events_total": Counter({(name,): float(n) for name, n in events.items()}),
    }
    for key in ("loads", "unloads", "checks"):
        out[key] = Counter()
    for step in sent:
        data = step.payload
        if step.name == "model_loaded":
            out["loads"][(str(data["format"]), str(data["model_id"]))] += 1  # by label name
        elif step.name == "model_unloaded":
            out["unloads"][(str(data["reason"]),)] += 1
        elif step.name == "model_compatibility_recorded":
            out["checks"][(str(data["backend"]), str(data["outcome"]))] += 1
    names = {
        "loads": "opta_lmx_model_loads_total",
        "unloads": "opta_lmx_model_unloads_total",
        "checks": "opta_lmx_model_compatibility_checks_total",
    }
    return {names.get(k, k): {key: float(n) for key, n in c.items()} for k, c in out.items()}


def observed(samples: Samples, name: str) -> dict[tuple[str, ...], float]:
    return {tuple(v for _, v in labels): value for (n, labels), value in samples.items()
            if n == name and value != 0.0}  # fmt: skip


@pytest.fixture
def soak(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[Plan, int], None]]:
    """Runs a plan: the scripts are queued before the exporter starts, so connection n
    plays script n; one more connection (silent, held) ends it."""
    nap = Nap()
    with FaultyLmx(admin_key=KEY, models={"a": 1.0}) as lmx:
        rigs: list[Rig] = []

        def run(plan: Plan, seed: int) -> None:
            lmx.push(*plan.scripts)
            overrides = {"backoff_base": 0.02, "backoff_cap": 0.2, "stale_timeout": STALE}
            rigs.append(start_rig(lmx, caplog, nap, **overrides))
            check_soak(lmx, rigs[0], plan, seed)

        try:
            yield run
        finally:
            nap.wake.set()
            for rig in rigs:
                rig.exporter.stop()


def check_soak(lmx: FaultyLmx, rig: Rig, plan: Plan, seed: int) -> None:
    total = len(plan.scripts)
    deadline = time.monotonic() + 3 * plan.seconds + 60.0
    while not lmx.wait(lambda: lmx.connections() > total, 0.25):
        rig.scrape()  # counters are compared with the previous scrape each time
        assert time.monotonic() < deadline, f"seed {seed}: the plan did not finish"
    state, health = final_view(rig, total - plan.faults["503"] - plan.faults["html"] + 1)
    samples = exposition(state, health)
    connections = [(record.ending, len(record.sent)) for record in lmx.records]
    for name, want in expected_counts(lmx, plan).items():
        assert observed(samples, name) == want, f"seed {seed}: {name} {connections}"
    reasons = Counter(REASON.get(fault, "eof") for fault in plan.faults.elements())
    got = health.reconnects
    for reason in (r for r in RECONNECT_REASONS if r != "connect_error"):  # at least, below
        assert got[reason] == reasons[reason], f"seed {seed}: reconnects {reason}"
    assert got["connect_error"] >= plan.faults["outage"], f"seed {seed}"
    lost = sum(len(record.lost) for record in lmx.records)
    assert state.state_drift == lost, f"seed {seed}: drift vs dropped state changes"
    assert state.event_errors["oversize"] == plan.faults["oversize"], f"seed {seed}"
    assert state.event_errors["malformed_json"] == plan.faults["garbage"], f"seed {seed}"
    assert set(state.loaded) == set(lmx.models), f"seed {seed}: final model set"
    assert health.resyncs["failure"] == 0
    assert all(record.done.is_set() for record in lmx.records[:total])
    assert len(lmx.records) == total + 1
    assert not lmx.records[total].sent
    rig.check()


def final_view(rig: Rig, resyncs: int) -> tuple[LmxState, ExporterHealth]:
    """State and health copied the moment the last connection opened: the final
    connection is silent, so a later look could also see it go stale."""
    seen: list[tuple[LmxState, ExporterHealth]] = []

    def opened(state: LmxState, health: ExporterHealth) -> bool:
        if health.connection_state == "open" and health.resyncs["success"] >= resyncs:
            seen.append((state.copy(), health.copy()))
        return bool(seen)

    rig.wait(opened, f"open after {resyncs} resyncs")
    return seen[0]


def exposition(state: LmxState, health: ExporterHealth) -> Samples:
    registry = CollectorRegistry()
    registry.register(LmxCollector(Store(state, health)))
    return parse(generate_latest(registry).decode())


def test_soak_short(soak: Callable[[Plan, int], None]) -> None:
    """Every fault once, in a random order, at a moderate rate (~6 s)."""
    seed = int(os.environ.get("OPTA_SOAK_SEED", time.time_ns()))
    rng = random.Random(seed)
    plan = Plan(rng, rate=400.0, models={"a": 1.0})
    for fault in rng.sample(FAULTS, len(FAULTS)):
        plan.add(fault, rng.uniform(0.3, 0.6))
    soak(plan, seed)


@pytest.mark.soak
def test_soak(soak: Callable[[Plan, int], None], request: pytest.FixtureRequest) -> None:
    """~60 s at ~2,000 events/s, a random fault every 1.5-4 s."""
    if "soak" not in (request.config.option.markexpr or "") and os.environ.get("OPTA_SOAK") != "1":
        pytest.skip("soak: select with -m soak or OPTA_SOAK=1")
    seed = int(os.environ.get("OPTA_SOAK_SEED", time.time_ns()))
    rng = random.Random(seed)
    plan = Plan(rng, rate=2000.0, models={"a": 1.0})
    while plan.seconds < 45.0:  # of events; stalls, outages and Retry-After add the rest
        plan.add(rng.choice(FAULTS), rng.uniform(1.5, 4.0))
    soak(plan, seed)
