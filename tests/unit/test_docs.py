"""The generated tables (README, docs/metrics.md) match the code."""

from __future__ import annotations

import pytest

from opta_exporter import docs
from opta_exporter.config import OPTIONS
from opta_exporter.metrics.specs import METRICS, MetricSpec
from opta_exporter.relay.families import RELAY_METRICS


def test_readme_tables_are_current() -> None:
    text = docs.README.read_text(encoding="utf-8")
    assert docs.render(text) == text, "run `python -m opta_exporter.docs`"


def test_metrics_page_is_current() -> None:
    text = docs.METRICS_PAGE.read_text(encoding="utf-8")
    assert text == docs.metrics_page(), "run `python -m opta_exporter.docs`"


def test_readme_names_every_option() -> None:
    text = docs.README.read_text(encoding="utf-8")
    assert all(f"`{opt.flag}`" in text and f"`{opt.env}`" in text for opt in OPTIONS)


@pytest.mark.parametrize("spec", [*METRICS, *RELAY_METRICS], ids=lambda spec: spec.name)
def test_contract_page_states_each_family(spec: MetricSpec) -> None:
    """docs/metrics.md is the contract dashboards and users read: each family the code
    exports is on it with its type and labels."""
    labels = ", ".join(f"`{label}`" for label in spec.labels) or "–"
    row = f"| `{spec.name}` | {spec.kind} | {labels} | {spec.help} |"
    assert row in docs.METRICS_PAGE.read_text(encoding="utf-8").splitlines()
