"""LMX's own /admin/metrics -> families, as prometheus_client's text parser groups them,
and the model cap over them. No I/O; the lines themselves are read in relay_lines.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from opta_exporter.core.labels import ModelCap
from opta_exporter.relay.lines import RelaySample, clean_lines, unescape_help

__all__ = [
    "MAX_SERIES",
    "RelayFamily",
    "RelayParse",
    "RelaySample",
    "cap_models",
    "model_token_counts",
    "parse_lmx_metrics",
    "token_counts",
]

# The most samples relayed from one read. LMX's own body holds ~1,500 at 100 models; a
# body of 300k series (6.8 MB) would otherwise be parsed, kept and re-exposed whole on
# every scrape (391 MB RSS). The rest is counted as dropped (`series_cap`), unparsed.
MAX_SERIES = 10_000

# What each family type owns besides its own name, as prometheus_client groups samples.
_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}


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
    capped: int = 0  # sample lines past the series cap, never parsed

    @property
    def sample_count(self) -> int:
        return sum(len(f.samples) for f in self.families.values())


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
            help_text = unescape_help(parts[3]) if len(parts) == 4 else ""
        else:
            kind = "unknown" if parts[3] == "untyped" else parts[3]
            owned = tuple(declared + suffix for suffix in _SUFFIXES.get(kind, ("",)))
    if name:
        yield RelayFamily(name, kind, help_text, tuple(samples))


def _countable(value: float) -> bool:
    """A value a counter-like sample may carry: OpenMetrics refuses NaN and negatives
    there, and one such sample would make a whole OpenMetrics scrape invalid."""
    return value >= 0  # false for NaN too


def _counter_values(family: RelayFamily) -> tuple[RelayFamily, int]:
    """A counter's samples without NaN or negative values (dropped, counted)."""
    kept = tuple(s for s in family.samples if _countable(s.value))
    return RelayFamily(family.name, family.kind, family.help, kept), len(family.samples) - len(kept)


def _complete_histogram(family: RelayFamily) -> tuple[RelayFamily, int]:
    """A histogram series without its `+Inf` bucket or `_sum` (a truncated read), with
    an `le` that is no number or with a NaN or negative value cannot be re-exposed
    faithfully: drop it, counted."""
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
        if float("inf") in bounds and sums and all(_countable(s.value) for s in samples):
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


def _is_sample(line: str) -> bool:
    line = line.strip()
    return bool(line) and not line.startswith("#")


def cut_series(text: str, max_series: int) -> tuple[str, int]:
    """The text up to (not including) its sample line number `max_series + 1`, and the
    count of sample lines cut. Done on the text, before any line is parsed, so a huge
    body costs a scan, not a sample object per line."""
    if text.count("\n") < max_series:  # the usual body: nothing to look at
        return text, 0
    seen, pos, end = 0, 0, len(text)
    while pos < end:
        stop = text.find("\n", pos)
        stop = end if stop < 0 else stop
        if _is_sample(text[pos:stop]):
            seen += 1
            if seen > max_series:
                rest = text[pos:]
                return text[:pos], sum(1 for line in rest.split("\n") if _is_sample(line))
        pos = stop + 1
    return text, 0


def parse_lmx_metrics(text: str, max_series: int = MAX_SERIES) -> RelayParse:
    """Every sample that can be read among the first `max_series`, and counts of those
    repaired, dropped and cut. A histogram series the cut left incomplete is dropped as
    cut too (counted in `capped`)."""
    text, capped = cut_series(text, max_series)
    kept, repaired, dropped = clean_lines(text)
    families, duplicates = _merge(_group(kept))
    dropped += duplicates
    for name, family in families.items():
        if family.kind == "histogram":
            families[name], incomplete = _complete_histogram(family)
            if capped:
                capped += incomplete
            else:
                dropped += incomplete
        elif family.kind == "counter":
            families[name], bad = _counter_values(family)
            dropped += bad
    owned = {
        name + suffix
        for name, family in families.items()
        for suffix in (*_SUFFIXES.get(family.kind, ()), "_created")
        if suffix
    }
    for name in [name for name in families if name in owned]:
        # a family named like another's sample (`x_bucket` beside histogram `x`): the two
        # cannot both be exposed; the typed family wins, this one is dropped, counted
        dropped += len(families.pop(name).samples)
    return RelayParse(families, repaired, dropped, capped)


# Labels whose values LMX takes from outside: model ids, and the `X-Client-Id` header any
# caller sets freely (`lmx_client_*{client}`). Each is capped per family.
CAPPED_LABELS = ("model", "client")


def cap_models(parse: RelayParse, cap: ModelCap) -> tuple[RelayParse, int]:
    """At most `cap.limit` values of each capped label per family, sticky across reads (a
    counter series must not vanish and come back from zero); returns the refused sample
    count."""
    families: dict[str, RelayFamily] = {}
    refused = 0
    for name, family in parse.families.items():
        kept: list[RelaySample] = []
        for sample in family.samples:
            if all(
                cap.admit(name if label == "model" else f"{name}{{{label}}}", value)
                for label in CAPPED_LABELS
                if (value := sample.labels.get(label)) is not None
            ):
                kept.append(sample)
            else:
                refused += 1
        families[name] = RelayFamily(name, family.kind, family.help, tuple(kept))
    return RelayParse(families, parse.repaired, parse.dropped, parse.capped), refused


def _single(parse: RelayParse, name: str) -> float | None:
    """The value of an unlabelled sample `name`, if the read has exactly that."""
    family = parse.families.get(name)
    if family is None:
        return None
    values = [s.value for s in family.samples if s.name == name and not s.labels]
    return values[0] if len(values) == 1 and 0 <= values[0] < math.inf else None


def token_counts(parse: RelayParse) -> tuple[float | None, float | None]:
    """(completion tokens so far, LMX's uptime) from one read: the throughput window's
    source (core/throughput.py). Either is None when the read lacks it."""
    return _single(parse, "lmx_completion_tokens_total"), _single(parse, "lmx_uptime_seconds")


def model_token_counts(parse: RelayParse) -> dict[str, float]:
    """Completion tokens so far per model (`lmx_model_tokens_total{model}`), from a read
    after the model cap, so that no more models than the cap admits are ever followed. A
    model with two samples, or a value no counter has, is left out."""
    family = parse.families.get("lmx_model_tokens_total")
    if family is None:
        return {}
    counts: dict[str, float] = {}
    seen: set[str] = set()
    for sample in family.samples:
        model = sample.labels.get("model")
        if sample.name != family.name or model is None or len(sample.labels) != 1:
            continue
        if model in seen:
            counts.pop(model, None)
            continue
        seen.add(model)
        if 0 <= sample.value < math.inf:
            counts[model] = sample.value
    return counts
