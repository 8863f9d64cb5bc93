"""LMX's /admin/metrics bodies and the checks the relay tests share: the sentinels around
each table row, an id with a quote and a backslash, a whole LMX body, both exposition
formats, and the client library's reading as the reference."""

from __future__ import annotations

import math
import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from opta_exporter.relay.families import RelayCollector
from opta_exporter.relay.parse import RelayParse, parse_lmx_metrics
from opta_exporter.relay.reader import RelayReader, RelayView

KEY = "s3cret-admin-key"
WEIRD = '/models/we"ird\\x.gguf'  # a quote and a backslash, as a local GGUF path can hold
WEIRD_ESCAPED = '/models/we\\"ird\\\\x.gguf'  # as the text format must carry it
HEAD = "# HELP lmx_requests_total Requests served.\n# TYPE lmx_requests_total counter\n"
HEAD += "lmx_requests_total 7"
TAIL = "# TYPE lmx_queued_requests gauge\nlmx_queued_requests 1"
SENTINELS = {("lmx_requests_total", (), 7.0), ("lmx_queued_requests", (), 1.0)}
Row = tuple[str, tuple[tuple[str, str], ...], float | str]


def rows(parse: RelayParse) -> set[Row]:
    """(sample name, sorted labels, value) with NaN as "NaN", since NaN != NaN."""
    return {
        (s.name, tuple(sorted(s.labels.items())), "NaN" if math.isnan(s.value) else s.value)
        for f in parse.families.values()
        for s in f.samples
    }


def m(model: str, value: float, name: str = "lmx_model_requests_total") -> Row:
    return (name, (("model", model),), value)


COUNTER = "# TYPE lmx_model_requests_total counter"
HIST = "lmx_request_duration_seconds"


def exposition(registry: CollectorRegistry) -> str:
    """Both formats a scrape may negotiate must parse; returns the classic text."""
    text = generate_latest(registry).decode()
    list(text_string_to_metric_families(text))
    openmetrics = generate_openmetrics(registry).decode()  # type: ignore[no-untyped-call]
    list(parse_openmetrics(openmetrics))  # type: ignore[no-untyped-call]
    return text


class StaticSource:
    def __init__(self, view: RelayView) -> None:
        self.current = view

    def view(self) -> RelayView:
        return self.current


def registry_for(source: StaticSource | RelayReader) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(RelayCollector(source))
    return registry


def names(registry: CollectorRegistry) -> set[str]:
    return {family.name for family in registry.collect()}


LMX_BODY = "\n".join(
    [
        HEAD,
        COUNTER,
        f'lmx_model_requests_total{{model="{WEIRD}"}} 3',
        f"# TYPE {HIST} histogram",
        f'{HIST}_bucket{{model="{WEIRD}",le="0.1"}} 0',
        f'{HIST}_bucket{{model="{WEIRD}",le="1"}} 2',
        f'{HIST}_bucket{{model="{WEIRD}",le="+Inf"}} 3',
        f'{HIST}_sum{{model="{WEIRD}"}} 4.5',
        f'{HIST}_count{{model="{WEIRD}"}} 3',
        "# TYPE lmx_speculative_acceptance_ratio gauge",
        "lmx_speculative_acceptance_ratio NaN",
        *[f"# TYPE lmx_{g} gauge\nlmx_{g} 1" for g in ("uptime_seconds", "loaded_models")],
        *[f"# TYPE lmx_{g} gauge\nlmx_{g} 2.5" for g in ("memory_used_gb", "memory_total_gb")],
        *[f"# TYPE lmx_{g} gauge\nlmx_{g} 4" for g in ("in_flight_requests", "concurrent_limit")],
        "# TYPE lmx_kv_cache_hits_total counter",
        "lmx_kv_cache_hits_total 11",
        "# TYPE lmx_draft_ratio summary",
        'lmx_draft_ratio{quantile="0.5"} 0.25',
        "lmx_draft_ratio_sum 1",
        "lmx_draft_ratio_count 4",
        "# TYPE lmx_widgets counter",
        "lmx_widgets 3",
        "# TYPE process_cpu_seconds_total counter",
        "process_cpu_seconds_total 12",
        TAIL,
    ]
)


def library_families(text: str) -> dict[str, tuple[str, str, list[Row]]]:
    """The reference: prometheus_client's parser, its counter renaming undone."""
    out: dict[str, tuple[str, str, list[Row]]] = {}
    declared = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    for metric in text_string_to_metric_families(text):
        name, renamed = metric.name, False
        if metric.type == "counter":
            if declared.get(name + "_total") == "counter":
                name += "_total"
            else:
                renamed = True
        rows: list[Row] = [
            (
                s.name.removesuffix("_total") if renamed else s.name,
                tuple(sorted((k, v) for k, v in s.labels.items() if v)),
                float(s.value),
            )
            for s in metric.samples
        ]
        kind, help_text, kept = out.get(name, (metric.type, metric.documentation, []))
        out[name] = (kind, help_text, kept + rows)
    return out


def fresh_view(body: str = LMX_BODY) -> RelayView:
    return RelayView(parse_lmx_metrics(body).families, 1.0, {"success": 1, "failure": 0})


def assert_reads_as_the_library(body: str) -> None:
    """LMX's text, when valid, reads as prometheus_client's parser reads it: no repair, no drop."""
    parse = parse_lmx_metrics(body)
    assert parse.dropped == parse.repaired == 0
    ours = {
        name: (
            f.kind,
            f.help,
            [(s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples],
        )
        for name, f in parse.families.items()
    }
    theirs = library_families(body)
    assert ours.keys() == theirs.keys()
    for name, (kind, help_text, rows) in theirs.items():
        assert ours[name][:2] == (kind, help_text), name
        assert repr(ours[name][2]) == repr(rows), name  # repr: NaN equals NaN


def tokens_body(tokens: str | None, uptime: str | None = None) -> str:
    """An LMX /admin/metrics body as LMX writes it, with its completion-token counter and
    uptime gauge as given (the text of the value) or left out (None)."""
    lines = [HEAD, "# HELP lmx_prompt_tokens_total Total prompt tokens processed."]
    lines += ["# TYPE lmx_prompt_tokens_total counter", "lmx_prompt_tokens_total 640"]
    if tokens is not None:
        lines += [
            "# HELP lmx_completion_tokens_total Total completion tokens generated.",
            "# TYPE lmx_completion_tokens_total counter",
            f"lmx_completion_tokens_total {tokens}",
        ]
    if uptime is not None:
        lines += [
            "# HELP lmx_uptime_seconds Server uptime.",
            "# TYPE lmx_uptime_seconds gauge",
            f"lmx_uptime_seconds {uptime}",
        ]
    return "\n".join([*lines, TAIL]) + "\n"
