"""An exporter wired to the fault-injecting LMX, with the invariants every fault test checks.

`Rig.check()` asserts what must hold after any fault: the consumer thread is alive, every
counter only went up across all scrapes, each return to `open` came after a successful
snapshot, every backoff wait respected the policy's floor, and the admin key appears in no
log line, traceback, repr, request target, page or metric.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter
from tests.conftest import WAIT, Gate
from tests.helpers import COUNTER_SUFFIXES, Samples, parse, promtool_check
from tests.integration.faults.faulty_lmx import FaultyLmx

KEY = "opta-admin-key-0f9e8d7c6b5a"  # must never leave the X-Admin-Key header
BASE, CAP = 0.05, 0.4  # the rig's backoff


@dataclass(frozen=True)
class Transition:
    """One `set_connection` call, with what the store held right after it."""

    state: str
    reason: str | None
    backoff: float
    resyncs: float
    models: frozenset[str]


@dataclass
class Rig:
    lmx: FaultyLmx
    exporter: Exporter
    gate: Gate
    caplog: pytest.LogCaptureFixture
    transitions: list[Transition] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    consumer: threading.Thread | None = None
    _last: Samples = field(default_factory=dict)

    @property
    def health(self) -> ExporterHealth:
        return self.exporter.store.view().health

    @property
    def state(self) -> LmxState:
        return self.exporter.store.view().state

    def wait(
        self, predicate: Callable[[LmxState, ExporterHealth], bool], what: str = "condition"
    ) -> None:
        assert self.exporter.store.wait_for(predicate, WAIT), f"{what} not reached in time"

    def wait_resyncs(self, n: int) -> None:
        self.wait(lambda s, h: h.resyncs["success"] >= n, f"{n} resyncs")

    def wait_open(self, resyncs: int = 1) -> None:
        self.wait(
            lambda s, h: h.connection_state == "open" and h.resyncs["success"] >= resyncs,
            f"open after {resyncs} resyncs",
        )

    def scrape(self) -> Samples:
        """GET /metrics; every counter, bucket, count and sum only ever goes up."""
        resp = requests.get(self.exporter.url + "/metrics", timeout=WAIT)
        resp.raise_for_status()
        self.texts.append(resp.text)
        samples = parse(resp.text)
        for key, old in self._last.items():
            if key[0].endswith(COUNTER_SUFFIXES):
                assert key in samples, f"counter series vanished: {key}"
                assert samples[key] >= old, f"counter went backwards: {key} {old} -> {samples[key]}"
        self._last = samples
        return samples

    def value(self, name: str, **labels: str) -> float | None:
        return self.scrape().get((name, tuple(sorted(labels.items()))))

    def log_lines(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records]

    def said(self, text: str) -> list[logging.LogRecord]:
        """Records at INFO or above that contain `text` (repeats go to DEBUG)."""
        return [
            r for r in self.caplog.records if r.levelno >= logging.INFO and text in r.getMessage()
        ]

    def check(self) -> None:
        """The invariants of every fault test (called at the end of each)."""
        assert self.consumer is not None, "the consumer never tried to connect"
        assert self.consumer.is_alive(), "the consumer thread died"
        self.scrape()
        promtool_check(self.texts[-1], required=False)
        opened = [i for i, t in enumerate(self.transitions) if t.state == "open"]
        for i in opened:
            before = [t for t in self.transitions[:i] if t.state == "connecting"][-1]
            assert self.transitions[i].resyncs > before.resyncs, "up before a resync"
        base = self.exporter.config.backoff_base
        waits = [t for t in self.transitions if t.state in ("backoff", "auth_failed")]
        for t in waits:
            assert t.reason == "dropped" or t.backoff >= base / 2, f"spinning: {t}"
        attempts = sum(t.state == "connecting" for t in self.transitions)
        assert attempts <= len(self.gate.waits) + 1, "an attempt without a backoff sleep"
        assert len(self.gate.waits) <= len(waits), "slept without a backoff state"
        self.check_no_key()

    def check_no_key(self) -> None:
        pages = [
            requests.get(self.exporter.url + path, timeout=WAIT).text for path in ("/", "/healthz")
        ]
        texts = {
            "log": self.caplog.text,
            "records": repr([(r.getMessage(), r.args, r.exc_text) for r in self.caplog.records]),
            "targets": repr([target for _, target, _ in self.lmx.requests]),
            "repr": repr(self.exporter.config) + repr(vars(self.exporter.consumer)),
            "snapshotter": repr(vars(self.exporter.snapshotter)),
            "metrics": "".join(self.texts) + "".join(pages),
        }
        for where, text in texts.items():
            assert KEY not in text, f"the admin key leaked into {where}"
        sent = [h.get("x-admin-key") for _, _, h in self.lmx.requests]
        assert sent, "no request reached LMX"
        assert set(sent) == {KEY}, "every request carries the key in its header"


def start_rig(
    lmx: FaultyLmx, caplog: pytest.LogCaptureFixture, gate: Gate, **overrides: Any
) -> Rig:
    """An exporter with a spy on its connection states (a public method of the store)."""
    caplog.set_level(logging.DEBUG)
    config = Config(
        lmx_url=lmx.url,
        listen_host="127.0.0.1",
        listen_port=0,
        admin_key=KEY,
        backoff_base=BASE,
        backoff_cap=CAP,
        stale_timeout=5.0,
        snapshot_interval=3600.0,
        relay_interval=0.0,
    )
    exporter = Exporter(dataclasses.replace(config, **overrides), sleep=gate, rng=lambda: 1.0)
    rig = Rig(lmx, exporter, gate, caplog)
    store = exporter.store
    set_connection = store.set_connection

    def spy(
        state: str,
        backoff: float = 0.0,
        reconnect_reason: str | None = None,
        error: str | None = None,
    ) -> None:
        set_connection(state, backoff, reconnect_reason, error)
        with store.lock:
            resyncs, models = store.health.resyncs["success"], frozenset(store.state.loaded)
        rig.transitions.append(Transition(state, reconnect_reason, backoff, resyncs, models))
        if state == "connecting":
            rig.consumer = threading.current_thread()

    store.set_connection = spy  # type: ignore[method-assign]
    exporter.start()
    return rig
