"""LMX's own /admin/metrics text -> families, repairing LMX's escaping defect; the model
cap over them. No I/O.

LMX pastes label values into its exposition unescaped: a model id holding `"` or `\\`
(local GGUF paths can) yields `m{model="/m/we"ird\\x.gguf"} 3`, and Prometheus rejects
the whole scrape. Each line is checked against the text format; where it fails but reads
as LMX's raw `name{label="<literal>",...} value`, it is re-escaped and re-validated by
prometheus_client's parser, and the cleaned text is then parsed by that parser, which
keeps LMX's `# HELP`/`# TYPE`. What cannot be read (a newline inside an id splits a line
in two; truncated lines; a proxy's HTML) is dropped line by line, never the whole read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from opta_exporter.labels import ModelCap

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_ESCAPED = r'"(?:[^"\\\n]|\\[\\"n])*"'
_NUMBER = r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|(?i:inf(?:inity)?|nan))"
_TAIL = rf"[ \t]+(?P<value>{_NUMBER})(?:[ \t]+-?\d+)?[ \t]*"
_LABELS_OK = rf"(?:{_LABEL}={_ESCAPED}(?:,{_LABEL}={_ESCAPED})*,?)?"
# A sample line exactly as the text format allows it (what Prometheus itself accepts).
_VALID_SAMPLE = re.compile(rf"{_NAME}(?:\{{{_LABELS_OK}\}})?{_TAIL}")
# LMX's own shape: labels up to the last `}` before the value, values written raw.
_RAW_SAMPLE = re.compile(rf"(?P<name>{_NAME})\{{(?P<labels>.*)\}}{_TAIL}")
# A raw value runs to the first `"` that is followed by `,next_label="` or ends the labels.
_RAW_LABEL = re.compile(rf'({_LABEL})="(.*?)"(?:,(?={_LABEL}=")|,?\Z)')
_HEADER = re.compile(
    rf"#[ \t]+(?:HELP[ \t]+{_NAME}(?:[ \t].*)?"
    rf"|TYPE[ \t]+(?P<name>{_NAME})[ \t]+(?P<type>counter|gauge|histogram|summary|untyped))"
)


@dataclass(frozen=True)
class RelaySample:
    name: str  # as LMX wrote it: lmx_requests_total, lmx_..._bucket
    labels: Mapping[str, str]  # unescaped values; empty values dropped (= absent)
    value: float


@dataclass(frozen=True)
class RelayFamily:
    name: str  # LMX's name (a counter keeps its `_total`)
    kind: str  # counter, gauge, histogram, summary or unknown (= untyped)
    help: str
    samples: tuple[RelaySample, ...]


@dataclass(frozen=True)
class RelayParse:
    families: Mapping[str, RelayFamily] = field(default_factory=dict)
    repaired: int = 0  # samples whose label values LMX left unescaped, re-escaped here
    dropped: int = 0  # lines or samples that could not be read

    @property
    def sample_count(self) -> int:
        return sum(len(f.samples) for f in self.families.values())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _raw_labels(section: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(section):
        match = _RAW_LABEL.match(section, pos)
        if match is None or match.group(1) in labels:
            return None
        labels[match.group(1)] = match.group(2)
        pos = match.end()
    return labels


def _raw_reading(line: str) -> tuple[str, dict[str, str]] | None:
    """Name and literal label values, read the way LMX writes them (no escapes)."""
    match = _RAW_SAMPLE.fullmatch(line)
    labels = None if match is None else _raw_labels(match.group("labels"))
    if match is None or labels is None:
        return None
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return f"{match.group('name')}{{{pairs}}} {match.group('value')}", labels


def _parses(line: str, labels: Mapping[str, str] | None = None) -> bool:
    """prometheus_client's verdict on one line, and that it read back `labels` exactly."""
    try:
        families = list(text_string_to_metric_families(line))
    except ValueError:
        return False
    samples = [s for f in families for s in f.samples]
    return labels is None or (len(samples) == 1 and samples[0].labels == labels)


def _needs_escaping(labels: Mapping[str, str]) -> bool:
    return any('"' in v or "\\" in v for v in labels.values())


def _clean_lines(text: str) -> tuple[list[str], dict[str, str], int, int]:
    """Valid lines kept, LMX's raw lines re-escaped, the rest dropped.

    Whether a body is raw is decided once for the whole body: one line that is invalid
    as escaped text but valid as raw text proves this LMX does not escape, so its other
    values are literal too (`a\\\\b` is two backslashes, not one). A body with no such
    line is read as proper escaped text, as a fixed LMX would send it.
    """
    lines = [line.strip() for line in text.split("\n")]
    valid = [_VALID_SAMPLE.fullmatch(line) is not None for line in lines]
    raw = [None if line.startswith("#") else _raw_reading(line) for line in lines]
    raw_body = any(
        r is not None and not ok and _needs_escaping(r[1]) for r, ok in zip(raw, valid, strict=True)
    )
    kept: list[str] = []
    declared: dict[str, str] = {}
    repaired = dropped = 0
    for line, ok, reading in zip(lines, valid, raw, strict=True):
        if not line:
            continue
        if line.startswith("#"):
            header = _HEADER.fullmatch(line)
            if header is not None and _parses(line):  # other comments carry nothing
                kept.append(line)
                if header.group("name"):
                    declared[header.group("name")] = header.group("type")
        elif raw_body and reading is not None and _needs_escaping(reading[1]):
            if _parses(*reading):
                kept.append(reading[0])
                repaired += 1
            else:
                dropped += 1
        elif ok and _parses(line):
            kept.append(line)
        else:
            dropped += 1
    return kept, declared, repaired, dropped


def _relay_family(metric: Metric, declared: Mapping[str, str]) -> RelayFamily:
    """Undo prometheus_client's OpenMetrics munging: LMX's counter keeps its own name."""
    name, renamed = metric.name, False
    if metric.type == "counter":
        if declared.get(name + "_total") == "counter":
            name += "_total"
        else:
            renamed = True  # a counter LMX named without `_total`: the parser appended it
    samples = tuple(
        RelaySample(
            s.name.removesuffix("_total") if renamed else s.name,
            {k: v for k, v in s.labels.items() if v != ""},
            float(s.value),
        )
        for s in metric.samples
    )
    return RelayFamily(name, metric.type, metric.documentation, samples)


def _complete_histogram(family: RelayFamily) -> tuple[RelayFamily, int]:
    """A histogram series without its `+Inf` bucket or `_sum` (a truncated read) or with
    an `le` that is no number cannot be re-exposed faithfully: drop it, counted."""
    series: dict[frozenset[tuple[str, str]], list[RelaySample]] = {}
    for s in family.samples:
        key = frozenset((k, v) for k, v in s.labels.items() if k != "le")
        series.setdefault(key, []).append(s)
    kept: list[RelaySample] = []
    dropped = 0
    for samples in series.values():
        les = [s.labels.get("le", "") for s in samples if s.name == family.name + "_bucket"]
        sums = [s for s in samples if s.name == family.name + "_sum"]
        try:
            bounds = [float(le) for le in les]
        except ValueError:
            bounds = []
        if float("inf") in bounds and sums:
            kept += samples
        else:
            dropped += len(samples)
    return RelayFamily(family.name, family.kind, family.help, tuple(kept)), dropped


def _merge(families: Iterable[RelayFamily]) -> tuple[dict[str, RelayFamily], int]:
    """One family per name and one sample per series: a repeated block is LMX's error,
    and exposing it twice would make the whole scrape invalid."""
    merged: dict[str, RelayFamily] = {}
    seen: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    dropped = 0
    for family in families:
        first = merged.get(family.name, family)
        unique = []
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            unique.append(s)
        samples = (first.samples if first is not family else ()) + tuple(unique)
        merged[family.name] = RelayFamily(first.name, first.kind, first.help, samples)
    return merged, dropped


def parse_lmx_metrics(text: str) -> RelayParse:
    """Every sample that can be read, and counts of those repaired and dropped."""
    kept, declared, repaired, dropped = _clean_lines(text)
    try:
        metrics = list(text_string_to_metric_families("\n".join(kept) + "\n"))
    except ValueError:  # every line passed alone; kept as a guard, never seen
        return RelayParse({}, 0, dropped + sum(not k.startswith("#") for k in kept))
    families, duplicates = _merge(_relay_family(m, declared) for m in metrics)
    dropped += duplicates
    for name, family in families.items():
        if family.kind == "histogram":
            families[name], incomplete = _complete_histogram(family)
            dropped += incomplete
    return RelayParse(families, repaired, dropped)


def cap_models(parse: RelayParse, cap: ModelCap) -> tuple[RelayParse, int]:
    """At most `cap.limit` model values per family, sticky across reads (a counter series
    must not vanish and come back from zero); returns the refused sample count."""
    families: dict[str, RelayFamily] = {}
    refused = 0
    for name, family in parse.families.items():
        kept: list[RelaySample] = []
        for sample in family.samples:
            model = sample.labels.get("model")
            if model is None or cap.admit(name, model):
                kept.append(sample)
            else:
                refused += 1
        families[name] = RelayFamily(name, family.kind, family.help, tuple(kept))
    return RelayParse(families, parse.repaired, parse.dropped), refused
