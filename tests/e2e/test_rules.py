"""prometheus/: the example config, the recording and alerting rules, and their unit tests.

promtool does the checking; without it these skip locally (with the reason) but fail in
CI, which installs it (.ci/run sets CI=true).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, require_tool

PROMETHEUS_DIR = ROOT / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
ALERT_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.alerts.yml"))
RECORDING_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.rules.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
ANNOTATIONS = ("summary", "description", "runbook")
SEVERITIES = ("critical", "warning")


def promtool() -> str:
    return require_tool("promtool", "prometheus")


def run_promtool(*args: str) -> None:
    result = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path} is not a YAML mapping"
    return doc


def rules(paths: list[Path]) -> list[dict[str, Any]]:
    return [rule for path in paths for group in load(path)["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules(ALERT_FILES) if "alert" in rule]


def test_the_files_exist() -> None:
    assert CONFIG.is_file()
    assert ALERT_FILES, "no prometheus/rules/*.alerts.yml"
    assert RECORDING_FILES, "no prometheus/rules/*.rules.yml"
    assert TEST_FILES, "no prometheus/tests/*.yml"


def test_promtool_check_config() -> None:
    """Also checks every rule file the example config names."""
    run_promtool("check", "config", str(CONFIG))


def test_promtool_check_rules() -> None:
    run_promtool("check", "rules", *map(str, RULE_FILES))


def test_promtool_test_rules() -> None:
    run_promtool("test", "rules", *map(str, TEST_FILES))


def test_the_example_config_loads_every_rule_file() -> None:
    named = {(CONFIG.parent / name).resolve() for name in load(CONFIG)["rule_files"]}
    assert named == {path.resolve() for path in RULE_FILES}


def test_the_unit_tests_load_the_real_rule_files() -> None:
    for path in TEST_FILES:
        named = {(path.parent / name).resolve() for name in load(path)["rule_files"]}
        assert named == {p.resolve() for p in RULE_FILES}, path


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """An alert nobody proved to fire may never fire; one never proved quiet may page all
    night. promtool only checks the cases that exist, so count them here."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts with no test case where they fire"
    assert names - quiet == set(), "alerts with no test case where they stay quiet"
    assert (firing | quiet) - names == set(), "test cases for alerts that do not exist"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_carries_a_runbook(rule: dict[str, Any]) -> None:
    annotations = rule.get("annotations", {})
    for key in ANNOTATIONS:
        assert str(annotations.get(key, "")).strip(), f"{rule['alert']}: no {key} annotation"
    assert rule.get("labels", {}).get("severity") in SEVERITIES


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
