"""The README's generated tables match the code."""

from __future__ import annotations

from opta_exporter import docs
from opta_exporter.config import OPTIONS
from opta_exporter.metrics.collector import METRICS
from opta_exporter.relay.families import RELAY_METRICS


def test_readme_tables_are_current() -> None:
    text = docs.README.read_text(encoding="utf-8")
    assert docs.render(text) == text, "run `python -m opta_exporter.docs`"


def test_tables_name_every_option_and_metric() -> None:
    text = docs.README.read_text(encoding="utf-8")
    assert all(f"`{opt.flag}`" in text and f"`{opt.env}`" in text for opt in OPTIONS)
    assert all(f"| `{spec.name}` | {spec.kind} |" in text for spec in (*METRICS, *RELAY_METRICS))
