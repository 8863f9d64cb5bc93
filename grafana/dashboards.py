"""Render the dashboards to import-ready JSON: `python -m grafana.dashboards`.

The SDK builds typed models; this module encodes them and adds what Grafana's import
needs beyond the model (`__inputs`, `__requires`) plus stable panel ids. The committed
files in grafana/dashboards/ must equal `generate()` (a test compares).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana.health import exporter_health
from grafana.overview import overview
from grafana.panels import DS_INPUT

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
GRAFANA_MIN_VERSION = "10.0.0"

DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "opta-lmx-overview.json": overview,
    "opta-exporter-health.json": exporter_health,
}
PANEL_NAMES = {
    "bargauge": "Bar gauge",
    "stat": "Stat",
    "state-timeline": "State timeline",
    "table": "Table",
    "timeseries": "Time series",
}


def _panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in doc.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


INTERVAL_ONLY = ("auto", "auto_count", "auto_min")


def _clean_variable(variable: dict[str, Any]) -> None:
    """The SDK gives every variable the same all-zero `id` and the interval-only `auto*`
    keys; Grafana's own exports carry neither, and variables are keyed by name."""
    variable.pop("id", None)
    if variable.get("type") != "interval":
        for key in INTERVAL_ONLY:
            variable.pop(key, None)


def render(builder: Dashboard) -> dict[str, Any]:
    """SDK model -> import-ready JSON: `__inputs`/`__requires`, stable panel ids."""
    doc: dict[str, Any] = json.loads(JSONEncoder().encode(builder.build()))
    for number, panel in enumerate(_panels(doc), start=1):
        panel["id"] = number
    for variable in doc.get("templating", {}).get("list", []):
        _clean_variable(variable)
    types = sorted({p["type"] for p in _panels(doc) if p["type"] != "row"})
    doc["__inputs"] = [
        {
            "name": DS_INPUT,
            "label": "Prometheus",
            "description": "The Prometheus that scrapes opta-exporter",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    doc["__requires"] = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_MIN_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        *({"type": "panel", "id": t, "name": PANEL_NAMES[t], "version": ""} for t in types),
    ]
    return doc


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: dump(render(build())) for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    out_dir = Path(argv[0]) if argv else OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (out_dir / name).write_text(text, encoding="utf-8")
        print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
