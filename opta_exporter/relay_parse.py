"""LMX's own /admin/metrics text -> families, repairing LMX's escaping defect; the model
cap over them. No I/O.

LMX pastes label values into its exposition unescaped: a model id holding `"` or `\\`
(local GGUF paths can) yields `m{model="/m/we"ird\\x.gguf"} 3`, and Prometheus rejects
the whole scrape. Each line is checked against the text format; where it fails but reads
as LMX's raw `name{label="<literal>",...} value`, it is re-escaped and re-validated by
prometheus_client's parser, and the cleaned text is then parsed by that parser, which
keeps LMX's `# HELP`/`# TYPE`. What cannot be read (a newline inside an id splits a line
in two; truncated lines; a proxy's HTML) is dropped line by line, never the whole read.

The lines are read with the same expressions that validate them, and grouped into
families as prometheus_client's text parser groups them (`_group`): that parser walks
label values a character at a time, ~150 ms for the 1,500 lines 100 models make, and
the relay read it twice, every 15 s, on the host that runs inference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from sys import intern

from opta_exporter.labels import ModelCap

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_ESCAPED = r'"(?:[^"\\\n]|\\[\\"n])*"'
_NUMBER = r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|(?i:inf(?:inity)?|nan))"
_TAIL = rf"[ \t]+(?P<value>{_NUMBER})(?:[ \t]+-?\d+)?[ \t]*"
_LABELS_OK = rf"(?:{_LABEL}={_ESCAPED}(?:,{_LABEL}={_ESCAPED})*,?)?"
# A sample line exactly as the text format allows it (what Prometheus itself accepts).
_VALID_SAMPLE = re.compile(rf"(?P<name>{_NAME})(?:\{{(?P<labels>{_LABELS_OK})\}})?{_TAIL}")
_LABEL_PAIR = re.compile(rf"({_LABEL})=({_ESCAPED})")
_UNESCAPE = re.compile(r'\\[\\n"]')
_UNESCAPED = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
# What each family type owns besides its own name, as prometheus_client groups samples.
_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}
# LMX's own shape: labels up to the last `}` before the value, values written raw.
_RAW_SAMPLE = re.compile(rf"(?P<name>{_NAME})\{{(?P<labels>.*)\}}{_TAIL}")
# A raw value runs to the first `"` that is followed by `,next_label="` or ends the labels.
_RAW_LABEL = re.compile(rf'({_LABEL})="(.*?)"(?:,(?={_LABEL}=")|,?\Z)')
_HEADER = re.compile(
    rf"#[ \t]+(?:HELP[ \t]+{_NAME}(?:[ \t].*)?"
    rf"|TYPE[ \t]+(?P<name>{_NAME})[ \t]+(?P<type>counter|gauge|histogram|summary|untyped))"
)


@dataclass(frozen=True, slots=True)  # ~1,500 of them at 100 models, kept between reads
class RelaySample:
    name: str  # as LMX wrote it: lmx_requests_total, lmx_..._bucket
    labels: Mapping[str, str]  # unescaped values; empty values dropped (= absent)
    value: float


@dataclass(frozen=True, slots=True)
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


def _labels(section: str | None) -> dict[str, str]:
    """Label values of a validated line, unescaped; empty ones kept (the caller decides)."""
    if not section:
        return {}
    return {
        intern(name): intern(
            _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(0)], quoted[1:-1])
            if "\\" in quoted
            else quoted[1:-1]
        )
        for name, quoted in _LABEL_PAIR.findall(section)
    }


def _sample(match: re.Match[str]) -> RelaySample:
    """A validated line's sample; an empty label value means absent, as in Prometheus."""
    labels = {k: v for k, v in _labels(match.group("labels")).items() if v}
    return RelaySample(intern(match.group("name")), labels, float(match.group("value")))


def _needs_escaping(labels: Mapping[str, str]) -> bool:
    return any('"' in v or "\\" in v for v in labels.values())


def _clean_lines(text: str) -> tuple[list[str | RelaySample], int, int]:
    """Header lines and samples, LMX's raw lines re-escaped, the rest dropped.

    Whether a body is raw is decided once for the whole body: one line that is invalid
    as escaped text but valid as raw text proves this LMX does not escape, so its other
    values are literal too (`a\\\\b` is two backslashes, not one). A body with no such
    line is read as proper escaped text, as a fixed LMX would send it.
    """
    lines = [line.strip() for line in text.split("\n")]
    valid = [_VALID_SAMPLE.fullmatch(line) for line in lines]
    raw_body = any(
        ok is None
        and not line.startswith("#")
        and (reading := _raw_reading(line)) is not None
        and _needs_escaping(reading[1])
        for line, ok in zip(lines, valid, strict=True)
    )
    # only a raw body needs every line's raw reading (a healthy LMX's never does)
    raw = [None if not raw_body or line.startswith("#") else _raw_reading(line) for line in lines]
    kept: list[str | RelaySample] = []
    repaired = dropped = 0
    for line, ok, reading in zip(lines, valid, raw, strict=True):
        if not line:
            continue
        if line.startswith("#"):
            if _HEADER.fullmatch(line) is not None:  # other comments carry nothing
                kept.append(line)
        elif raw_body and reading is not None and _needs_escaping(reading[1]):
            fixed = _VALID_SAMPLE.fullmatch(reading[0])
            if fixed is not None and _labels(fixed.group("labels")) == reading[1]:
                kept.append(_sample(fixed))
                repaired += 1
            else:
                dropped += 1
        elif ok is not None:
            kept.append(_sample(ok))
        else:
            dropped += 1
    return kept, repaired, dropped


def _group(lines: Iterable[str | RelaySample]) -> Iterator[RelayFamily]:
    """Families as prometheus_client's text parser groups them (`# HELP`/`# TYPE` open a
    family; a sample it does not own stands alone, untyped), without its renaming of
    counters: a family keeps the name LMX declared, and each sample the name it has."""
    name, help_text, kind = "", "", "unknown"
    owned: tuple[str, ...] = ()
    samples: list[RelaySample] = []
    for line in lines:
        if isinstance(line, RelaySample):
            if line.name in owned:
                samples.append(line)
                continue
            if name:
                yield RelayFamily(name, kind, help_text, tuple(samples))
            name, help_text, kind, owned, samples = "", "", "unknown", (), []
            yield RelayFamily(line.name, "unknown", "", (line,))
            continue
        parts = line.split(None, 3)
        declared = parts[2]
        if declared != name:
            if name:
                yield RelayFamily(name, kind, help_text, tuple(samples))
            name, help_text, samples = declared, "", []
            if parts[1] == "HELP":
                kind, owned = "unknown", (declared,)
        if parts[1] == "HELP":
            help_text = _UNESCAPE.sub(_help_escape, parts[3]) if len(parts) == 4 else ""
        else:
            kind = "unknown" if parts[3] == "untyped" else parts[3]
            owned = tuple(declared + suffix for suffix in _SUFFIXES.get(kind, ("",)))
    if name:
        yield RelayFamily(name, kind, help_text, tuple(samples))


def _help_escape(match: re.Match[str]) -> str:
    """HELP text escapes only backslash and newline; `\\"` stays as written."""
    text = match.group(0)
    return text if text == '\\"' else _UNESCAPED[text]


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
    kept, repaired, dropped = _clean_lines(text)
    families, duplicates = _merge(_group(kept))
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
