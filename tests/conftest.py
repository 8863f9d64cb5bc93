"""Shared fixtures: a real loopback LMX simulator and an in-process exporter against it."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from lmx_simulator import LmxSimulator
from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter
from opta_exporter.web.webconfig import WebConfig
from tests.helpers import Samples, parse

WAIT = 10.0  # generous upper bound for any wait on a loopback event; never a sleep


class Gate:
    """An injected backoff sleep: records each wait, then holds the consumer in backoff
    until the test opens the gate, so a test sees the backoff state deterministically."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._open = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
        self._open.wait(WAIT)

    def release(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._open.clear()


@pytest.fixture
def sim() -> Iterator[LmxSimulator]:
    with LmxSimulator() as simulator:
        yield simulator


@pytest.fixture
def make_sim() -> Iterator[Callable[..., LmxSimulator]]:
    sims: list[LmxSimulator] = []

    def make(**kwargs: Any) -> LmxSimulator:
        simulator = LmxSimulator(**kwargs)
        simulator.start()
        sims.append(simulator)
        return simulator

    yield make
    for simulator in sims:
        simulator.stop()


@pytest.fixture
def make_exporter() -> Iterator[Callable[..., Exporter]]:
    exporters: list[Exporter] = []

    def make(
        lmx: LmxSimulator,
        *,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] = lambda: 1.0,
        web: WebConfig | None = None,
        **overrides: Any,
    ) -> Exporter:
        config = dataclasses.replace(
            Config(
                lmx_url=lmx.url,
                listen_host="127.0.0.1",
                listen_port=0,
                backoff_base=0.05,
                backoff_cap=0.2,
            ),
            **overrides,
        )
        exporter = Exporter(config, sleep=sleep, rng=rng, web=web)
        exporter.start()
        exporters.append(exporter)
        return exporter

    yield make
    for exporter in exporters:
        exporter.stop()


def wait_for(exporter: Exporter, predicate: Callable[[LmxState, ExporterHealth], bool]) -> None:
    assert exporter.store.wait_for(predicate, WAIT), "condition not reached in time"


def is_open(state: LmxState, health: ExporterHealth) -> bool:
    return health.connection_state == "open"


def scrape(exporter: Exporter) -> Samples:
    """GET /metrics over HTTP and parse it: {(sample name, sorted labels): value}."""
    resp = requests.get(exporter.url + exporter.config.telemetry_path, timeout=WAIT)
    resp.raise_for_status()
    return parse(resp.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder / "cert.pem", folder / "key.pem"
