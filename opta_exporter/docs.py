"""The README's configuration and metric tables, generated from the code that defines them.

`python -m opta_exporter.docs` rewrites the README between the markers; a test fails
when the README is stale, so the tables can never drift from OPTIONS and METRICS.
"""

from __future__ import annotations

import sys
from pathlib import Path

from opta_exporter.config import ADMIN_KEY_ENV, OPTIONS
from opta_exporter.metrics.collector import METRICS
from opta_exporter.relay.families import RELAY_METRICS

README = Path(__file__).resolve().parent.parent / "README.md"


def config_table() -> str:
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for opt in OPTIONS:
        default = f"`{opt.default}`" if opt.default is not None else "–"
        rows.append(f"| `{opt.flag}` | `{opt.env}` | {default} | {opt.help} |")
    rows.append(f"| – | `{ADMIN_KEY_ENV}` | – | The LMX admin key itself (or use the file). |")
    return "\n".join(rows)


def metric_table() -> str:
    rows = ["| name | type | labels | meaning |", "|---|---|---|---|"]
    for spec in (*METRICS, *RELAY_METRICS):
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "–"
        rows.append(f"| `{spec.name}` | {spec.kind} | {labels} | {spec.help} |")
    return "\n".join(rows)


def render(readme: str) -> str:
    for name, table in (("config", config_table()), ("metrics", metric_table())):
        begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
        head, found, rest = readme.partition(begin)
        if found and end in rest:
            readme = head + begin + table + "\n" + end + rest.partition(end)[2]
    return readme


def main() -> int:
    text = README.read_text(encoding="utf-8")
    README.write_text(render(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
