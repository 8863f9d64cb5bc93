"""What a dashboard asks Prometheus: every PromQL expression in its JSON, found by walking
the JSON rather than the builder code, so a panel added later is checked automatically.

The tests use it twice: to prove every metric name a query reads exists, and to run every
query against a real Prometheus with Grafana's variables replaced by concrete values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.$:])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2", "group_left", "group_right"}
)
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)\s*$", re.S)
_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\[\[(?P<old>\w+)\]\]|\$(?P<plain>\w+)")


@dataclass(frozen=True)
class DashboardQuery:
    """`where` names the dashboard, the panel (or annotation, variable) and the refId."""

    where: str
    expr: str


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def variable_promql(query: str) -> str:
    """Grafana's `label_values(selector, label)` is not PromQL; `count by (label)
    (selector)` returns one series per value the variable would offer."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return f"count by ({match['label']}) ({match['selector']})"


def dashboard_queries(doc: dict[str, Any]) -> list[DashboardQuery]:
    """Every PromQL expression of a dashboard: panel targets, annotations, variables."""
    title = doc.get("title", "?")
    found: list[DashboardQuery] = []
    for panel in _panels(doc.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                where = f"{title} / {panel.get('title', '?')} / {target.get('refId', '?')}"
                found.append(DashboardQuery(where, target["expr"]))
    for annotation in doc.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            found.append(
                DashboardQuery(f"{title} / annotation {annotation['name']}", annotation["expr"])
            )
    for variable in doc.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            found.append(
                DashboardQuery(f"{title} / variable {variable['name']}", variable_promql(text))
            )
    return found


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables (`$name`, `${name}`, `${name:format}`, `[[name]]`) the way
    Grafana would for one selected value; an unknown variable is an error, so a dashboard
    that gains a variable makes its callers say what it stands for."""

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["old"] or match["plain"]
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once strings, label
    matchers, ranges, grouping clauses, function calls and keywords are removed."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENT.findall(text) if name not in _KEYWORDS}
