"""grafana/: the committed dashboards are exactly what the code generates, they import into
Grafana (inputs, units, datasources), and every query reads a metric that exists.

That queries also return data is proven against a real Prometheus in test_e2e_prometheus.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from grafana.dashboards import DASHBOARDS, OUT_DIR, generate
from grafana.panels import DS_INPUT
from grafana.promql import RECORDED
from grafana.queries import dashboard_queries, metric_names, substitute, variable_promql
from opta_exporter.metrics.specs import METRICS
from opta_exporter.relay.families import RELAY_METRICS
from tests.helpers import ROOT

RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
PROVISIONING = ROOT / "grafana" / "provisioning"
DATASOURCE = {"type": "prometheus", "uid": "${" + DS_INPUT + "}"}
# LMX's own families the exporter relays from /admin/metrics under LMX's names.
RELAYED = frozenset(
    {
        "lmx_requests_total",
        "lmx_errors_total",
        "lmx_stream_requests_total",
        "lmx_prompt_tokens_total",
        "lmx_completion_tokens_total",
        "lmx_model_requests_total",
        "lmx_model_errors_total",
        "lmx_model_tokens_total",
        "lmx_queued_requests",
    }
)
RELAYED_HISTOGRAMS = frozenset({"lmx_request_duration_seconds"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
GRAFANA_VALUES = {
    "job": "opta-lmx",
    "instance": "127.0.0.1:11234",
    "model": ".*",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
}


def dashboards() -> dict[str, dict[str, Any]]:
    return {name: json.loads((OUT_DIR / name).read_text(encoding="utf-8")) for name in DASHBOARDS}


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in doc["panels"]:
        yield panel
        yield from panel.get("panels", [])


def visual_panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in panels(doc) if panel["type"] != "row"]


def rules() -> list[dict[str, Any]]:
    found = []
    for path in RULE_FILES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        found += [rule for group in doc["groups"] for rule in group["rules"]]
    return found


def known_names() -> set[str]:
    names = {"up"} | RELAYED
    for spec in (*METRICS, *RELAY_METRICS):
        names.add(spec.name)
        if spec.kind == "histogram":
            names |= {spec.name + suffix for suffix in HISTOGRAM_SUFFIXES}
    for family in RELAYED_HISTOGRAMS:
        names |= {family + suffix for suffix in HISTOGRAM_SUFFIXES}
    return names | {rule["record"] for rule in rules() if "record" in rule}


def test_committed_dashboards_are_what_the_code_generates() -> None:
    for name, text in generate().items():
        committed = (OUT_DIR / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} is stale: run `python -m grafana.dashboards`"


def test_no_stray_dashboard_files() -> None:
    assert {path.name for path in OUT_DIR.glob("*.json")} == set(DASHBOARDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_a_unit(name: str) -> None:
    for panel in visual_panels(dashboards()[name]):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert isinstance(unit, str), f"{panel['title']!r} has no unit"
        assert unit, f"{panel['title']!r} has no unit"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_queries_prometheus_through_the_input(name: str) -> None:
    doc = dashboards()[name]
    for panel in visual_panels(doc):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for annotation in doc["annotations"]["list"]:
        assert annotation["datasource"] == DATASOURCE, annotation["name"]
    for variable in doc["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_import_metadata(name: str) -> None:
    """What Grafana's import dialog needs: the input to ask for, and what to require."""
    doc = dashboards()[name]
    assert doc["__inputs"] == [
        {
            "name": DS_INPUT,
            "label": "Prometheus",
            "description": "The Prometheus that scrapes opta-exporter",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    required = {(r["type"], r["id"]) for r in doc["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    assert {("panel", p["type"]) for p in visual_panels(doc)} <= required
    grafana = next(r for r in doc["__requires"] if r["type"] == "grafana")
    assert int(grafana["version"].split(".")[0]) >= 10


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_variables(name: str) -> None:
    """The datasource variable shares the input's name, so a provisioned copy (whose
    `${DS_PROMETHEUS}` nobody fills in) still finds its Prometheus."""
    doc = dashboards()[name]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables[DS_INPUT]["type"] == "datasource"
    assert variables[DS_INPUT]["query"] == "prometheus"
    assert {"job", "instance"} <= set(variables)
    if name == "opta-lmx-overview.json":
        assert variables["model"]["includeAll"] is True
    for variable in variables.values():
        assert "id" not in variable, variable["name"]


def test_uids_and_panel_ids_are_unique() -> None:
    docs = dashboards()
    assert len({doc["uid"] for doc in docs.values()}) == len(docs)
    for doc in docs.values():
        ids = [panel["id"] for panel in panels(doc)]
        assert len(ids) == len(set(ids)), doc["title"]


def test_every_metric_a_query_or_rule_reads_exists() -> None:
    known = known_names()
    exprs = [
        (q.where, substitute(q.expr, GRAFANA_VALUES))
        for doc in dashboards().values()
        for q in dashboard_queries(doc)
    ]
    exprs += [(rule.get("record") or rule["alert"], rule["expr"]) for rule in rules()]
    unknown = {
        (where, name) for where, expr in exprs for name in metric_names(expr) if name not in known
    }
    assert unknown == set(), "names in neither METRICS, the relayed families nor the rules"


def test_every_dashboard_query_is_found() -> None:
    """The extraction the end-to-end test relies on sees panels, annotations, variables."""
    queries = [q for doc in dashboards().values() for q in dashboard_queries(doc)]
    targets = sum(len(p["targets"]) for d in dashboards().values() for p in visual_panels(d))
    annotations = sum(len(d["annotations"]["list"]) for d in dashboards().values())
    variables = sum(
        v["type"] == "query" for d in dashboards().values() for v in d["templating"]["list"]
    )
    assert len(queries) == targets + annotations + variables
    assert annotations >= 3, "loads, unloads and canary failures as annotations"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (job) (rate(lmx_requests_total{job=~"a|b"}[5m]))', {"lmx_requests_total"}),
        (
            "time() - opta_exporter_last_event_timestamp_seconds",
            {"opta_exporter_last_event_timestamp_seconds"},
        ),
        ("a unless b offset 5m", {"a", "b"}),
        ("x / on (job) group_left (model) y > bool 1e3", {"x", "y"}),
        ('sum(rate(foo{m="rate(bar)"}[1m])) by (job) and baz', {"foo", "baz"}),
        ("histogram_quantile(0.95, sum by (le) (h_bucket))", {"h_bucket"}),
        ("ns:rule:rate5m{quantile='0.5'}", {"ns:rule:rate5m"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_substitute() -> None:
    values = {"job": "j", "__range": "1h"}
    assert substitute('x{job=~"$job"}[$__range]', values) == 'x{job=~"j"}[1h]'
    assert substitute('x{job=~"${job}", a="${job:regex}", b="[[job]]"}', values) == (
        'x{job=~"j", a="j", b="j"}'
    )
    with pytest.raises(KeyError, match="model"):
        substitute('x{model=~"$model"}', values)


def test_variable_promql() -> None:
    assert variable_promql('label_values(up{job="a"}, instance)') == (
        'count by (instance) (up{job="a"})'
    )
    with pytest.raises(ValueError, match="label_values"):
        variable_promql("query_result(up)")


def test_provisioning_files() -> None:
    dashboards_yml = yaml.safe_load((PROVISIONING / "dashboards" / "opta-lmx.yml").read_text())
    assert dashboards_yml["apiVersion"] == 1
    (provider,) = dashboards_yml["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"


# -- a fleet of LMX: one dashboard shows many, by instance ------------------------------
def targets(doc: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in visual_panels(doc):
        for target in panel["targets"]:
            yield panel, target


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_legend_names_the_instance(name: str) -> None:
    """With ten LMX on a panel, a line or stat without its instance is nobody's. Table
    queries have no legend: their rows carry the instance column."""
    for panel, target in targets(dashboards()[name]):
        if target.get("format") == "table":
            continue
        assert "{{instance}}" in target["legendFormat"], (panel["title"], target["refId"])
    for annotation in dashboards()[name]["annotations"]["list"]:
        assert "{{instance}}" in annotation["titleFormat"], annotation["name"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_job_and_instance_pick_many_with_all(name: str) -> None:
    variables = {v["name"]: v for v in dashboards()[name]["templating"]["list"]}
    for variable in ("job", "instance"):
        assert variables[variable]["multi"] is True, variable
        assert variables[variable]["includeAll"] is True, variable
        assert variables[variable]["allValue"] == ".*", variable
    for _, target in targets(dashboards()[name]):
        # a multi-value variable is a regex alternation: only `=~` matches it
        assert 'job="$job"' not in target["expr"]
        assert 'instance="$instance"' not in target["expr"]


def test_dashboards_link_each_other_keeping_variables_and_time() -> None:
    docs = dashboards()
    for doc in docs.values():
        (link,) = doc["links"]
        assert link["type"] == "dashboards"
        assert link["includeVars"] is True
        assert link["keepTime"] is True
        assert all(set(link["tags"]) <= set(other["tags"]) for other in docs.values())


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_work_without_the_recording_rules(name: str) -> None:
    """A plain import into a Prometheus without prometheus/rules/: no panel, annotation
    or variable reads a recorded series (the rules stay for the alerts and as an
    optimisation)."""
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for query in dashboard_queries(dashboards()[name]):
        assert metric_names(query.expr).isdisjoint(recorded), query.where


FLEET_TABLE = "LMX fleet"


def fleet_table() -> dict[str, Any]:
    (panel,) = [
        p
        for p in visual_panels(dashboards()["opta-lmx-overview.json"])
        if p["title"] == FLEET_TABLE
    ]
    return panel


def test_fleet_table_is_one_row_per_lmx() -> None:
    """Instant table queries, each with one series per (job, instance), merged: a row per
    LMX with up, health, shedding, loaded models, memory used and request rate."""
    panel = fleet_table()
    assert panel["type"] == "table"
    for target in panel["targets"]:
        assert target["instant"] is True, target["refId"]
        assert target["format"] == "table", target["refId"]
        assert target["expr"].startswith(
            ("max by (job, instance) (", "sum by (job, instance) (", "count by (job, instance) (")
        ), target["refId"]
    assert [t["id"] for t in panel["transformations"]] == ["merge", "organize"]
    names = panel["transformations"][1]["options"]["renameByName"]
    assert [names[f"Value #{t['refId']}"] for t in panel["targets"]] == [
        "Up",
        "Health",
        "Shedding",
        "Loaded models",
        "Memory used",
        "Requests/s",
    ]


def normal(expr: str) -> str:
    """PromQL with its line breaks and inner-paren spaces gone: YAML's layout is no change."""
    return re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", " ".join(expr.split())))


def expanded(expr: str, recorded: dict[str, str]) -> str:
    """A rule's expression with every recorded series it reads replaced by that rule's
    own expression; the sum of a per-model sum is the sum (the all-model quantiles)."""
    for name, inner in recorded.items():
        expr = re.sub(rf"(?<![\w:]){re.escape(name)}(?![\w:])", inner, expr)
    return re.sub(
        r"sum by \(job, instance, le\) \(sum by \(job, instance, model, le\) (\(.*?\))\)",
        r"sum by (job, instance, le) \1",
        normal(expr),
    )


def test_raw_queries_are_the_recording_rules() -> None:
    """What the dashboards run in place of each recorded series is that rule's expression,
    so a Prometheus with the rules and one without show the same figures."""
    found = {
        (r["record"], r.get("labels", {}).get("quantile", "")): r for r in rules() if "record" in r
    }
    assert set(found) == set(RECORDED)
    plain = {record: normal(r["expr"]) for (record, q), r in found.items() if not q}
    for key, rule in found.items():
        assert expanded(rule["expr"], plain) == RECORDED[key], key
