"""End to end: the LMX simulator -> the exporter -> a real Prometheus with the repo's rules.

Proves what no unit test can: Prometheus scrapes every metric family with the values a
scripted LMX scenario implies, every dashboard query and recording rule parses and returns
data, and the stream-down alert fires when LMX goes away and clears when it returns.

Skipped only when the `prometheus` binary is absent outside CI (CI=true makes it a
failure). Everything listens on 127.0.0.1; Prometheus is always terminated and its data
directory removed. Waits on Prometheus are bounded polls of its HTTP API.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from grafana.dashboards import DASHBOARDS, OUT_DIR
from grafana.queries import DashboardQuery, dashboard_queries, substitute
from lmx_simulator import LmxSimulator
from opta_exporter.core.health import SOURCES
from opta_exporter.core.state import GIB
from opta_exporter.metrics.specs import METRICS
from opta_exporter.relay.families import RELAY_METRICS
from tests.e2e.prometheus_stack import (
    BASE_GB,
    BROKEN,
    CANARY_FAIL,
    DEADLINE,
    EXAMPLE_CONFIG,
    JOB,
    MAIN,
    MEMORY_GB,
    ODD,
    PHASE_A,
    PHASE_B,
    POLL,
    REPO_RUNNING,
    REQUESTS,
    ROTATING,
    PromQLError,
    Stack,
    binary,
    drain,
    exporter_for,
    holds,
    is_open,
    phase_a,
    prometheus,
    scraped,
    send_requests,
    wait_until,
)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    binary("prometheus")
    started = time.time()
    sim = LmxSimulator(heartbeat_interval=1.0)
    with tempfile.TemporaryDirectory(prefix="opta-e2e-") as tmp, sim:
        exporter = exporter_for(sim, snapshot_interval=300.0)  # drift only from the scenario
        exporter.start()
        try:
            assert exporter.store.wait_for(is_open, DEADLINE), "the exporter never connected"
            with prometheus(Path(tmp), exporter.server.port) as api:
                wait_until("the exporter target to be up", holds(api, f'up{{job="{JOB}"}}', 1))
                wait_until("opta_lmx_up to be scraped", holds(api, "opta_lmx_up", 1))
                phase_a(sim, exporter)
                scraped(api, "phase A", len(PHASE_A))
                send_requests(sim, PHASE_B)  # counters move between scrapes: rates > 0
                drain(sim, exporter)
                scraped(api, "phase B", len(REQUESTS))
                yield Stack(sim, exporter, api, started)
        finally:
            exporter.stop()


# -- what Prometheus must see ----------------------------------------------------------
def family_selector(name: str, kind: str) -> str:
    sample = name + "_bucket" if kind == "histogram" else name
    return f'count({{__name__="{sample}", job="{JOB}"}})'


def test_every_metric_family_is_scraped(stack: Stack) -> None:
    missing: list[str] = []

    def check() -> bool:
        missing[:] = [
            spec.name
            for spec in (*METRICS, *RELAY_METRICS)
            if not stack.api.query(family_selector(spec.name, spec.kind))
        ]
        return not missing

    wait_until(lambda: f"every family in METRICS (missing: {missing})", check)


def test_lmx_state_values(stack: Stack) -> None:
    api = stack.api
    assert api.scalar("opta_lmx_up") == 1
    assert api.by("opta_lmx_info", "version") == {"0.1.0": 1}
    assert stack.started - 5 <= api.scalar("opta_lmx_start_time_seconds") <= time.time()
    used = BASE_GB + sum(MEMORY_GB.values())
    assert api.scalar("opta_lmx_memory_total_bytes") == 512 * GIB
    assert api.scalar("opta_lmx_memory_used_bytes") == pytest.approx(used * GIB)
    assert api.scalar("opta_lmx_memory_available_bytes") == pytest.approx((512 - used) * GIB)
    assert api.scalar("opta_lmx_memory_threshold_ratio") == 0.9
    assert api.scalar("opta_lmx_requests_in_flight") == 3
    assert api.scalar("opta_lmx_requests_max_concurrent") == 4
    loaded = {
        (labels["model"], labels["format"]) for labels, _ in api.query("opta_lmx_model_loaded")
    }
    assert loaded == {(MAIN, "mlx"), (ODD, "gguf"), (BROKEN, "mlx")}
    memory = api.by("opta_lmx_model_memory_bytes", "model")
    assert memory == pytest.approx({model: gb * GIB for model, gb in MEMORY_GB.items()})
    readiness = api.by("opta_lmx_model_readiness == 1", "model")
    assert set(readiness) == set(MEMORY_GB)
    states = {
        labels["model"]: labels["state"] for labels, _ in api.query("opta_lmx_model_readiness == 1")
    }
    assert states == {MAIN: "routable", ODD: "routable", BROKEN: "quarantined"}
    assert api.by("opta_lmx_model_crashes", "model") == {MAIN: 0, ODD: 0, BROKEN: 2}
    assert api.by("opta_lmx_download_progress_ratio", "repo") == {REPO_RUNNING: 0.4}
    listed = api.by("opta_lmx_quantize_jobs_listed > 0", "status")
    assert listed == {"completed": 1, "failed": 1, "running": 1}


def test_lmx_event_counts(stack: Stack) -> None:
    api = stack.api
    loads = {
        (labels["model"], labels["format"]): v
        for labels, v in api.query("opta_lmx_model_loads_total")
    }
    assert loads == {
        (MAIN, "mlx"): 1,
        (ODD, "gguf"): 1,
        (ROTATING, "mlx"): 1,
        (BROKEN, "mlx"): 1,
        (CANARY_FAIL, "mlx"): 1,
    }
    assert api.by("opta_lmx_model_load_duration_seconds_count", "format") == {"mlx": 4, "gguf": 1}
    unloads = api.by("opta_lmx_model_unloads_total", "reason")
    assert unloads == {"manual": 1, "canary_failed": 1, "ttl": 0, "lru": 0, "other": 0}
    assert api.by("opta_lmx_model_canaries_total", "outcome") == {"passed": 3, "failed": 2}
    assert api.scalar("sum(opta_lmx_model_compatibility_checks_total)") == 3
    downloads = api.by("opta_lmx_downloads_total", "outcome")
    assert downloads == {"completed": 1, "failed": 1, "cancelled": 0}
    assert api.scalar("opta_lmx_download_duration_seconds_count") == 1  # as LMX times it
    quantize = api.by("opta_lmx_quantize_jobs_total", "outcome")
    assert quantize == {"completed": 1, "failed": 1, "cancelled": 0}
    assert api.scalar("opta_lmx_config_reloads_total") == 1
    events = api.by("opta_lmx_events_total", "event")
    assert events["config_reloaded"] == 1
    assert not {"request_completed", "memory_warning", "message"} & set(events)  # LMX as it is


def test_throughput_window_is_tokens_per_second_from_lmx_counters(stack: Stack) -> None:
    """Phase B's tokens moved LMX's counter between two relay reads: the window holds
    real rates (exact values against a set clock: tests/integration/test_relay.py)."""
    api = stack.api
    wait_until(
        "a throughput sample", lambda: bool(api.query("opta_lmx_throughput_window_samples > 0"))
    )
    stats = api.by("opta_lmx_throughput_window_tokens_per_second", "stat")
    assert set(stats) == {"mean", "p50", "p95", "max", "min", "latest"}
    assert 0 <= stats["min"] <= stats["p50"] <= stats["p95"] <= stats["max"]
    assert stats["max"] > 0  # phase B's completion tokens arrived between two reads
    completion = sum(r.completion for r in REQUESTS)
    # no rate can exceed every token LMX ever counted arriving within one relay interval
    assert stats["max"] <= completion / stack.exporter.config.relay_interval * 1.5


def test_exporter_health_values(stack: Stack) -> None:
    api = stack.api
    states = api.by("opta_exporter_connection_state", "state")
    assert states == {"connecting": 0, "open": 1, "backoff": 0, "auth_failed": 0, "stopped": 0}
    reconnects = api.by("opta_exporter_reconnects_total", "reason")
    assert reconnects["eof"] == 1
    assert sum(reconnects.values()) == 1
    assert api.scalar("opta_exporter_backoff_seconds") == 0
    assert api.by("opta_exporter_event_errors_total", "reason")["malformed_json"] == 1
    assert api.by("opta_exporter_resyncs_total", "outcome")["success"] >= 2
    assert api.scalar("opta_exporter_state_drift_total") == 0
    dropped = api.by("opta_exporter_series_dropped_total", "metric")
    assert dropped["opta_lmx_model_loaded"] == 1
    assert time.time() - api.scalar("opta_exporter_last_event_timestamp_seconds") < 30
    (build,) = api.query("opta_exporter_build_info")
    assert build[0]["version"]


def test_sources_and_load_shedding(stack: Stack) -> None:
    """Every interval read is a source; those the simulator has always served (the
    snapshots and the relay) are up with a good read during this run, and LMX is not
    shedding load."""
    api = stack.api
    up = api.by("opta_exporter_source_up", "source")
    assert set(up) == set(SOURCES)
    assert {source: up[source] for source in ("status", "memory", "relay")} == {
        "status": 1,
        "memory": 1,
        "relay": 1,
    }
    ages = api.by("time() - opta_exporter_source_last_success_timestamp_seconds", "source")
    assert {"status", "memory", "relay"} <= set(ages)
    assert all(0 <= age <= time.time() - stack.started for age in ages.values()), ages
    assert api.scalar("opta_lmx_load_shedding") == 0


def test_relayed_lmx_families(stack: Stack) -> None:
    """LMX's own /admin/metrics, relayed under LMX's names; the awkward model id (which
    breaks LMX's own text) must arrive intact."""
    api = stack.api
    wait_until("lmx_requests_total to be relayed", holds(api, "lmx_requests_total", len(REQUESTS)))
    assert api.scalar("lmx_errors_total") == sum(r.error for r in REQUESTS)
    assert api.scalar("lmx_stream_requests_total") == sum(r.stream for r in REQUESTS)
    assert api.scalar("lmx_prompt_tokens_total") == sum(r.prompt for r in REQUESTS)
    assert api.scalar("lmx_completion_tokens_total") == sum(r.completion for r in REQUESTS)
    per_model = Counter(r.model for r in REQUESTS)
    assert api.by("lmx_model_requests_total", "model") == per_model
    errors = Counter(r.model for r in REQUESTS if r.error)
    assert api.by("lmx_model_errors_total", "model") == errors
    assert api.by('lmx_request_duration_seconds_bucket{le="+Inf"}', "model") == per_model
    assert api.query("lmx_queued_requests")
    assert api.by("opta_exporter_relay_reads_total", "outcome")["failure"] == 0
    assert api.scalar("opta_exporter_relay_samples_repaired_total") > 0  # the odd id
    assert api.by("opta_exporter_relay_samples_dropped_total", "reason") == {
        "unparseable": 0,
        "cap": 0,
        "series_cap": 0,
        "too_large": 0,
    }


# -- every query the dashboards and rules run ------------------------------------------
def _dashboard_queries() -> list[DashboardQuery]:
    return [
        query
        for name in sorted(DASHBOARDS)
        for query in dashboard_queries(json.loads((OUT_DIR / name).read_text(encoding="utf-8")))
    ]


def _rules(kind: str) -> list[dict[str, Any]]:
    found = []
    for name in yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))["rule_files"]:
        doc = yaml.safe_load((EXAMPLE_CONFIG.parent / name).read_text(encoding="utf-8"))
        found += [rule for group in doc["groups"] for rule in group["rules"] if kind in rule]
    return found


DASHBOARD_QUERIES = _dashboard_queries()
RECORDING_RULES = _rules("record")
ALERT_RULES = _rules("alert")


def grafana_values(stack: Stack, model: str) -> dict[str, str]:
    """What Grafana would put in: one job, this instance, a model regex, and intervals."""
    return {
        "job": JOB,
        "instance": stack.instance,
        "model": model,
        "__rate_interval": "1m",
        "__interval": "1m",
        "__range": "1h",
    }


def uses_model(expr: str) -> bool:
    return "$model" in expr or "${model" in expr


def dashboard_checks(stack: Stack, query: DashboardQuery) -> dict[str, str]:
    """The query as Grafana sends it with every model selected, and with one model."""
    checks = {"all models": substitute(query.expr, grafana_values(stack, ".*"))}
    if uses_model(query.expr):
        checks["one model"] = substitute(query.expr, grafana_values(stack, MAIN))
    return checks


def rule_checks(rule: dict[str, Any]) -> dict[str, str]:
    """The rule's expression itself, and the series Prometheus recorded from it."""
    matchers = [f'job="{JOB}"'] + [f'{k}="{v}"' for k, v in rule.get("labels", {}).items()]
    return {"expression": rule["expr"], "recorded": f"{rule['record']}{{{', '.join(matchers)}}}"}


Key = tuple[str, int, str]  # (dashboard | rule, index, check)


@pytest.fixture(scope="module")
def query_results(stack: Stack) -> dict[Key, str]:
    """Every dashboard and recording-rule expression, polled together until each returns
    data or the deadline passes: "ok", or why not."""
    exprs: dict[Key, str] = {}
    for index, query in enumerate(DASHBOARD_QUERIES):
        for check, expr in dashboard_checks(stack, query).items():
            exprs["dashboard", index, check] = expr
    for index, rule in enumerate(RECORDING_RULES):
        for check, expr in rule_checks(rule).items():
            exprs["rule", index, check] = expr
    results: dict[Key, str] = {}

    def all_ok() -> bool:
        for key, expr in exprs.items():
            if results.get(key) != "ok":
                try:
                    results[key] = "ok" if stack.api.query(expr) else f"empty: {expr}"
                except PromQLError as exc:
                    results[key] = f"{exc}: {expr}"
        return all(result == "ok" for result in results.values())

    deadline = time.monotonic() + DEADLINE
    while not all_ok() and time.monotonic() < deadline:
        time.sleep(POLL)
    return results


@pytest.mark.parametrize(
    "index", range(len(DASHBOARD_QUERIES)), ids=[q.where for q in DASHBOARD_QUERIES]
)
def test_dashboard_query_returns_data(index: int, query_results: dict[Key, str]) -> None:
    query = DASHBOARD_QUERIES[index]
    checks = ["all models", "one model"] if uses_model(query.expr) else ["all models"]
    assert {c: query_results["dashboard", index, c] for c in checks} == dict.fromkeys(checks, "ok")


@pytest.mark.parametrize(
    "index", range(len(RECORDING_RULES)), ids=[str(r["record"]) for r in RECORDING_RULES]
)
def test_recording_rule_returns_data(index: int, query_results: dict[Key, str]) -> None:
    checks = ["expression", "recorded"]
    assert {c: query_results["rule", index, c] for c in checks} == dict.fromkeys(checks, "ok")


@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: str(r["alert"]))
def test_alert_expression_parses(rule: dict[str, Any], stack: Stack) -> None:
    stack.api.query(rule["expr"])  # raises PromQLError on a parse error


def test_promtool_check_metrics_on_a_live_scrape(stack: Stack) -> None:
    resp = requests.get(stack.exporter.url + "/metrics", timeout=10)
    resp.raise_for_status()
    result = subprocess.run(
        [binary("promtool"), "check", "metrics"],
        input=resp.text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- alerts (these run last: the stream-down test stops and restarts the simulator) ----
def test_scenario_alerts_fire(stack: Stack) -> None:
    api = stack.api

    def firing() -> bool:
        alerts = api.alerts()
        return all(
            "firing" in alerts.get(name, set())
            for name in ("OptaLmxModelQuarantined", "OptaLmxCanaryFailures")
        )

    wait_until("the quarantine and canary alerts to fire", firing)
    quiet = {
        "OptaExporterDown",
        "OptaExporterAbsent",
        "OptaLmxStreamDown",
        "OptaLmxAuthFailing",
        "OptaLmxMemoryAboveThreshold",
        "OptaLmxLoadShedding",
        "OptaLmxCrashLoop",
        "OptaLmxEventsDropped",
        "OptaExporterRelayFailing",
        "OptaExporterSourceDown",
    }
    assert set(api.alerts()).isdisjoint(quiet)


def test_stream_down_alert_fires_and_clears(stack: Stack) -> None:
    api, seen = stack.api, set[str]()

    def stream_down(state: str) -> Callable[[], bool]:
        def check() -> bool:
            states = api.alerts().get("OptaLmxStreamDown", set())
            seen.update(states)
            return state in states

        return check

    stack.sim.stop()
    try:
        wait_until("opta_lmx_up to drop to 0", holds(api, "opta_lmx_up", 0))
        wait_until("OptaLmxStreamDown to fire", stream_down("firing"))
    finally:
        stack.sim.start()  # same port, like a restarted LMX
    assert seen <= {"pending", "firing"}
    wait_until("opta_lmx_up to return to 1", holds(api, "opta_lmx_up", 1))
    wait_until("OptaLmxStreamDown to clear", lambda: "OptaLmxStreamDown" not in api.alerts())
