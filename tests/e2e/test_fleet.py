"""A fleet of Macs, as issue 19 runs it: three LMX, an exporter beside each, a Prometheus in
agent mode scraping them through the example file_sd file (one `instance` per Mac) and
`remote_write`-ing to a central Prometheus, where every query of the overview's fleet table
returns one row per LMX, named by the file_sd `instance` label."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from grafana.dashboards import OUT_DIR
from grafana.queries import substitute
from lmx_simulator import LmxSimulator
from tests.e2e.prometheus_stack import (
    DEADLINE,
    JOB,
    PrometheusApi,
    PromQLError,
    binary,
    exporter_for,
    free_port,
    is_open,
    running,
    wait_until,
)
from tests.helpers import ROOT

FILE_SD = ROOT / "prometheus" / "file_sd" / "opta-lmx.yml"
FLEET_TABLE = "LMX fleet"
GRAFANA_ALL = {"job": ".*", "instance": ".*"}  # both variables on "All"


@dataclass(frozen=True)
class Mac:
    """One LMX of the fleet: its name (the file_sd `instance`) and what it holds."""

    instance: str
    exporter_port: int
    models: int


def fleet_queries() -> dict[str, str]:
    """Column title -> PromQL of the overview's fleet table, variables on "All"."""
    doc = json.loads((OUT_DIR / "opta-lmx-overview.json").read_text(encoding="utf-8"))
    panels = [p for row in doc["panels"] for p in (row, *row.get("panels", []))]
    (panel,) = [p for p in panels if p["title"] == FLEET_TABLE]
    names = panel["transformations"][1]["options"]["renameByName"]
    return {
        names[f"Value #{t['refId']}"]: substitute(t["expr"], GRAFANA_ALL) for t in panel["targets"]
    }


def prometheus_major() -> int:
    out = subprocess.run(
        [binary("prometheus"), "--version"], capture_output=True, text=True, check=True
    )
    match = re.search(r"version (\d+)\.", out.stdout + out.stderr)
    assert match, out
    return int(match[1])


def agent_flag() -> str:
    """Agent mode is a feature flag on Prometheus 2.x and a flag of its own from 3.0."""
    return "--agent" if prometheus_major() >= 3 else "--enable-feature=agent"


def file_sd(tmp: Path, ports: list[int]) -> tuple[Path, list[str]]:
    """The example file_sd file with its targets moved to these exporters; its `instance`
    labels kept, so the fleet's rows carry the example's names."""
    groups: list[dict[str, Any]] = yaml.safe_load(FILE_SD.read_text(encoding="utf-8"))
    assert len(groups) == len(ports), "the example lists one Mac per exporter here"
    for group, port in zip(groups, ports, strict=True):
        group["targets"] = [f"127.0.0.1:{port}"]
    path = tmp / "opta-lmx.yml"
    path.write_text(yaml.safe_dump(groups), encoding="utf-8")
    return path, [group["labels"]["instance"] for group in groups]


def agent_config(tmp: Path, targets: Path, central_port: int) -> Path:
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": JOB, "file_sd_configs": [{"files": [str(targets)]}]}],
        "remote_write": [
            {
                "url": f"http://127.0.0.1:{central_port}/api/v1/write",
                "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms"},
            }
        ],
    }
    path = tmp / "agent.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[PrometheusApi, list[Mac]]]:
    binary("prometheus")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opta-fleet-")))
        exporters = []
        for number in range(3):
            sim = stack.enter_context(LmxSimulator(heartbeat_interval=1.0))
            for index in range(number + 1):  # 1, 2, 3 models: each row tells its LMX
                sim.load_model(f"mlx-community/model-{index}-4bit", memory_gb=2.0)
            sim.record_request("mlx-community/model-0-4bit")
            exporter = exporter_for(sim)
            exporter.start()
            stack.callback(exporter.stop)
            exporters.append(exporter)
        for exporter in exporters:
            assert exporter.store.wait_for(is_open, DEADLINE), "an exporter never connected"
        ports = [exporter.server.port for exporter in exporters]
        targets, names = file_sd(tmp, ports)
        central_port, agent_port = free_port(), free_port()
        (tmp / "central.yml").write_text("global: {}\n", encoding="utf-8")  # no scrapes
        central = stack.enter_context(
            running(
                "central",
                tmp,
                [
                    f"--config.file={tmp / 'central.yml'}",
                    f"--storage.tsdb.path={tmp / 'central'}",
                    "--web.enable-remote-write-receiver",  # 2.33 on; the same flag in 3.x
                ],
                central_port,
            )
        )
        stack.enter_context(
            running(
                "agent",
                tmp,
                [
                    agent_flag(),
                    f"--config.file={agent_config(tmp, targets, central_port)}",
                    f"--storage.agent.path={tmp / 'agent'}",
                ],
                agent_port,
            )
        )
        macs = [Mac(n, p, m) for n, p, m in zip(names, ports, (1, 2, 3), strict=True)]
        yield central, macs


def rows(api: PrometheusApi, expr: str) -> dict[str, float]:
    """instance -> value; a second series for one instance would be a second row."""
    result = api.query(expr)
    found = {labels.get("instance", "?"): value for labels, value in result}
    assert len(found) == len(result), f"{expr}: {result}"
    return found


@pytest.mark.parametrize("column", sorted(fleet_queries()))
def test_fleet_table_has_one_row_per_lmx(
    column: str, fleet: tuple[PrometheusApi, list[Mac]]
) -> None:
    api, macs = fleet
    expr = fleet_queries()[column]
    expected = {mac.instance for mac in macs}
    seen: dict[str, float] = {}

    def one_row_each() -> bool:
        nonlocal seen
        try:
            seen = rows(api, expr)
        except PromQLError:
            return False
        return set(seen) == expected

    wait_until(lambda: f"{column}: rows {sorted(seen)}, want {sorted(expected)}", one_row_each)


def test_fleet_table_values(fleet: tuple[PrometheusApi, list[Mac]]) -> None:
    """The central Prometheus holds each Mac's own figures, under its file_sd name."""
    api, macs = fleet
    queries = fleet_queries()
    want = {
        "Up": {mac.instance: 1.0 for mac in macs},
        "Health": {mac.instance: 1.0 for mac in macs},  # ok
        "Shedding": {mac.instance: 0.0 for mac in macs},
        "Loaded models": {mac.instance: float(mac.models) for mac in macs},
    }
    got: dict[str, dict[str, float]] = {}

    def matches() -> bool:
        got.update({column: rows(api, queries[column]) for column in want})
        return got == want

    wait_until(lambda: f"fleet values {got}, want {want}", matches)
    assert all(0 < used < 1 for used in rows(api, queries["Memory used"]).values())
    assert all(rate >= 0 for rate in rows(api, queries["Requests/s"]).values())
