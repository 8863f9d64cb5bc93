"""The end-to-end scenario and its Prometheus: what the scripted LMX does (models, requests,
a failed canary, downloads), a real Prometheus on a free port with the repo's rules, and
bounded polls of its HTTP API."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from lmx_simulator import LmxSimulator
from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.daemon import Exporter
from tests.helpers import ROOT

EXAMPLE_CONFIG = ROOT / "prometheus" / "prometheus.yml"
JOB = "opta-lmx"
DEADLINE = 20.0  # upper bound for anything Prometheus has to scrape or evaluate
POLL = 0.2
ALERT_FOR = "2s"  # test copy of the alert rules: same expressions, shorter `for`

MAIN = "mlx-community/Qwen3-8B-4bit"
ODD = '/models/we"ird\\x ✨.gguf'  # quote, backslash, emoji: LMX's own text breaks on it
ROTATING = "mlx-community/Llama-3.2-3B-Instruct-4bit"
BROKEN = "mlx-community/broken\nmodel-4bit"  # a newline in the id; ends quarantined
CANARY_FAIL = "mlx-community/gemma-3-12b-it-4bit"  # fails its canary, LMX unloads it
TOO_LONG = "m" * 300  # over the 256-character cap: refused and counted
REPO_DONE, REPO_FAILED = "mlx-community/Phi-4-mini-4bit", "bartowski/Mistral-Small-24B-GGUF"
REPO_RUNNING, QUANT_RUNNING = "Qwen/Qwen3-32B", "mlx-community/Qwen3-32B"
REPOS = (REPO_DONE, REPO_FAILED, REPO_RUNNING)
MEMORY_GB = {MAIN: 4.6, ODD: 7.9, BROKEN: 3.0}
BASE_GB = 2.0  # what the simulated LMX holds with no model


@dataclass(frozen=True)
class Request:
    model: str
    latency: float
    prompt: int
    completion: int
    error: bool = False
    stream: bool = False


PHASE_A = (
    Request(MAIN, 0.4, 100, 50, stream=True),
    Request(MAIN, 1.2, 200, 80),
    Request(MAIN, 7.0, 50, 0, error=True),
    Request(ODD, 0.8, 120, 60, stream=True),
    Request(ODD, 3.0, 300, 150),
)
PHASE_B = (
    Request(MAIN, 0.6, 80, 40, stream=True),
    Request(MAIN, 0.3, 60, 30),
    Request(MAIN, 12.0, 90, 0, error=True),
    Request(ODD, 2.2, 150, 90, stream=True),
    Request(ODD, 9.5, 40, 0, error=True),
)
REQUESTS = PHASE_A + PHASE_B


# -- Prometheus ------------------------------------------------------------------------
class PromQLError(Exception):
    pass


Sample = tuple[dict[str, str], float]


class PrometheusApi:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        resp = requests.get(self.url + path, params=params, timeout=10)
        body = resp.json()
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[Sample]:
        data = self.get("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def by(self, expr: str, label: str) -> dict[str, float]:
        return {labels[label]: value for labels, value in self.query(expr)}

    def scalar(self, expr: str) -> float:
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return result[0][1]

    def alerts(self) -> dict[str, set[str]]:
        """alertname -> states (pending, firing) of its active alerts."""
        found: dict[str, set[str]] = {}
        for alert in self.get("/api/v1/alerts")["alerts"]:
            found.setdefault(alert["labels"]["alertname"], set()).add(alert["state"])
        return found


def wait_until(
    what: str | Callable[[], str], check: Callable[[], bool], timeout: float = DEADLINE
) -> None:
    """Poll an external process until `check()` holds; fail with `what` at the deadline
    (a callable `what` is asked then, so it can say what was still missing)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {said}")
        time.sleep(POLL)


def holds(api: PrometheusApi, expr: str, expected: float) -> Callable[[], bool]:
    def check() -> bool:
        result = api.query(expr)
        return len(result) == 1 and result[0][1] == expected

    return check


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"`{name}` is missing in CI: .ci/run installs Debian's `prometheus`")
        pytest.skip(f"`{name}` is not installed (Debian package `prometheus`); CI runs this")
    return path


def write_config(tmp: Path, exporter_port: int) -> Path:
    """The example prometheus.yml, with 1 s intervals, this exporter as the target, and
    the alert rules copied with every `for` shortened (expressions untouched)."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    rule_files = []
    for name in config["rule_files"]:
        source = EXAMPLE_CONFIG.parent / name
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "alert" in rule and "for" in rule:
                    rule["for"] = ALERT_FOR
        copy = tmp / source.name
        copy.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        rule_files.append(str(copy))
    config["rule_files"] = rule_files
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{exporter_port}"]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def running(name: str, tmp: Path, args: list[str], port: int) -> Iterator[PrometheusApi]:
    """A Prometheus (`args` after the binary) on 127.0.0.1:`port`, ready, and always
    terminated; its log in tmp/<name>.log, quoted if it exits early."""
    log = tmp / f"{name}.log"
    argv = [binary("prometheus"), *args, f"--web.listen-address=127.0.0.1:{port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen([*argv, "--log.level=warn"], stdout=out, stderr=subprocess.STDOUT)
    api = PrometheusApi(f"http://127.0.0.1:{port}")

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return requests.get(api.url + "/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(f"{name} to get ready", ready)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def prometheus(tmp: Path, exporter_port: int) -> Iterator[PrometheusApi]:
    args = [
        f"--config.file={write_config(tmp, exporter_port)}",
        f"--storage.tsdb.path={tmp / 'data'}",
    ]
    with running("prometheus", tmp, args, free_port()) as api:
        yield api


def exporter_for(sim: LmxSimulator, snapshot_interval: float = 1.0) -> Exporter:
    """An exporter on a free loopback port following `sim`, with intervals of a second
    (Prometheus scrapes every second here), not yet started."""
    config = Config(
        lmx_url=sim.url,
        listen_host="127.0.0.1",
        listen_port=0,
        heartbeat_interval=1.0,
        stale_timeout=3.0,
        snapshot_interval=snapshot_interval,
        relay_interval=1.0,
        jobs_interval=1.0,
        jobs_busy_interval=0.5,
        backoff_base=0.05,
        backoff_cap=0.2,
    )
    return Exporter(config, rng=lambda: 1.0)


# -- the scenario ----------------------------------------------------------------------
def events_in(state: LmxState) -> float:
    return sum(count for event, count in state.events.items() if event != "heartbeat")


def drain(sim: LmxSimulator, exporter: Exporter) -> None:
    """Publish in small steps, each taken in before the next: LMX drops a subscriber
    whose 100-event queue overflows, and this scenario is not about that."""
    published = sim.events_published
    assert exporter.store.wait_for(lambda s, h: events_in(s) >= published, DEADLINE)
    assert sim.zombie_count() == 0


def is_open(state: LmxState, health: ExporterHealth) -> bool:
    return health.connection_state == "open" and state.synced


def fail_canary(sim: LmxSimulator, model: str, *, crashes: int) -> None:
    """A load whose canary fails; LMX then quarantines the model."""
    sim.load_model(model, memory_gb=MEMORY_GB.get(model, 6.0), emit=False)
    states = ("unknown", "admitted", "loading", "canary_pending")
    for previous, state in itertools.pairwise(states):
        sim.publish(
            "model_readiness_changed",
            {"model_id": model, "previous_state": previous, "state": state, "crash_count": 0},
        )
    memory = MEMORY_GB.get(model, 6.0)
    sim.publish(
        "model_loaded",
        {"model_id": model, "format": "mlx", "memory_gb": memory, "duration_sec": 2.0},
    )
    sim.publish("model_canary_started", {"model_id": model, "backend": "mlx-lm"})
    sim.publish(
        "model_canary_failed",
        {"model_id": model, "backend": "mlx-lm", "duration_sec": 1.2, "error": "boom"},
    )
    sim.quarantine_model(model, crash_count=crashes, reason="canary failed")


def send_requests(sim: LmxSimulator, batch: tuple[Request, ...]) -> None:
    for r in batch:
        sim.record_request(
            r.model,
            latency_sec=r.latency,
            prompt_tokens=r.prompt,
            completion_tokens=r.completion,
            error=r.error,
            stream=r.stream,
        )


def phase_a(sim: LmxSimulator, exporter: Exporter) -> None:
    sim.load_model(MAIN, fmt="mlx", memory_gb=MEMORY_GB[MAIN], duration_sec=3.2)
    sim.load_model(ODD, fmt="gguf", memory_gb=MEMORY_GB[ODD], duration_sec=5.4)
    sim.load_model(ROTATING, memory_gb=2.1, duration_sec=1.8)
    drain(sim, exporter)
    fail_canary(sim, BROKEN, crashes=2)
    fail_canary(sim, CANARY_FAIL, crashes=1)
    sim.unload_model(CANARY_FAIL, reason="canary_failed")
    sim.unload_model(ROTATING, reason="manual")
    drain(sim, exporter)
    # downloads and quantize jobs as LMX runs them: progress only in its listings
    downloads = {repo: sim.start_download(repo, total_bytes=1000) for repo in REPOS}
    for repo, done in ((REPO_DONE, 600), (REPO_FAILED, 200), (REPO_RUNNING, 400)):
        sim.advance_download(downloads[repo], done)
    sim.finish_download(downloads[REPO_DONE])
    sim.fail_download(downloads[REPO_FAILED], "HTTP 404")
    sim.finish_quantize(sim.start_quantize(MAIN))
    sim.fail_quantize(sim.start_quantize(ODD), "out of memory")
    sim.start_quantize(QUANT_RUNNING)
    sim.publish("config_reloaded", {"routing_aliases": 2, "memory_threshold": 90})
    sim.publish_raw(b"event: model_loaded\ndata: {not json\n\n")
    sim.publish("model_loaded", {"model_id": TOO_LONG, "format": "mlx", "memory_gb": 1.0})
    drain(sim, exporter)
    send_requests(sim, PHASE_A)
    drain(sim, exporter)
    sim.set_in_flight(3)
    resyncs = exporter.store.view().health.resyncs["success"]
    sim.close_streams()  # LMX ends the stream: the exporter reconnects and resyncs
    assert exporter.store.wait_for(
        lambda s, h: h.resyncs["success"] > resyncs and h.connection_state == "open", DEADLINE
    ), "no reconnect after LMX closed the stream"
    drain(sim, exporter)


def scraped(api: PrometheusApi, phase: str, requests_done: int) -> None:
    """The request count relayed from LMX's own /admin/metrics (read every relay
    interval, then scraped) is in Prometheus: LMX sends no event per request."""
    expr = "lmx_requests_total"
    wait_until(f"{phase}: {expr} == {requests_done}", holds(api, expr, requests_done))


@dataclass
class Stack:
    sim: LmxSimulator
    exporter: Exporter
    api: PrometheusApi
    started: float

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.exporter.server.port}"
