"""The exporter's own families, written straight from a state copy.

prometheus_client builds a Sample object, a label dict and an escaped label string for
every one of the thousands of samples 100 models make, on every scrape: per-line Python
work is the cost (bench/README.md, scrape cost). So each family keeps the text between
its numbers until its label sets change, and a scrape only spells the numbers, with
C-level `map`s, into those slots and joins. The output is byte-identical to the
library's (a test compares); the library still serves everything else: negotiation,
the relay's families, `name[]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import accumulate
from operator import add, is_, itemgetter
from struct import pack
from typing import NamedTuple, cast

from prometheus_client.utils import floatToGoString

from opta_exporter.core.histogram import HistogramFamily, Series, le_values
from opta_exporter.core.labels import escape_label
from opta_exporter.metrics.specs import MetricSpec, Sample, Table

# Below this the library spells a finite float as repr does (an int count c as f"{c}.0");
# from there on it switches to Go-style exponents.
_EXACT = 1e6
# The library's own spelling, typed for mypy; cached, as the big values (bytes, token
# totals) mostly repeat from one scrape to the next.
_go: Callable[[float], str] = lru_cache(maxsize=4096)(floatToGoString)

Keys = tuple[tuple[str, ...], ...]
_label_values: Callable[[Sample], tuple[str, ...]] = itemgetter(0)
_value: Callable[[Sample], float] = itemgetter(1)


def _plain(values: Sequence[float]) -> bool:
    """Whether repr spells every value as the library does: all finite and below 1e6 (a
    NaN or ±inf makes the sum NaN or inf; so does an overflow, which is merely slower)."""
    total = sum(values)
    return total - total == 0 and max(values) < _EXACT


def header(name: str, kind: str, help_text: str, openmetrics: bool) -> str:
    """`# HELP` and `# TYPE` as the library writes them: `name` as the text format has it
    (a counter's with `_total`), `kind` as OpenMetrics does (`unknown`, not `untyped`)."""
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    if openmetrics:
        help_text = help_text.replace('"', '\\"')
        name = name.removesuffix("_total") if kind == "counter" else name
    elif kind == "unknown":
        kind = "untyped"
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def _spell(value: float) -> str:
    value = float(value)
    return repr(value) if value < _EXACT and value - value == 0 else _go(value)


class _Lines(NamedTuple):
    """A family's fixed text for one list of label sets, in one format."""

    spec: MetricSpec
    keys: Keys
    bounds: tuple[float, ...] | None  # a histogram's
    # The text between the numbers, with an empty slot for each number (the list is
    # copied, never changed): the header and first line's start, then each line's end
    # and the next one's start. After an int count the end is ".0\n", so `str` spells it.
    slots: list[str]


class _Family(NamedTuple):
    lines: _Lines
    seen: object  # what `data` was written from: equal again, the text is the same
    data: bytes  # the text, encoded once: a scrape joins bytes


class Exposition:
    """Writes the tables; keeps each family's fixed text until its label sets change, and
    its text until a number changes.

    Concurrent scrapes may render at once: entries are immutable and replaced whole (a
    dict item assignment), so no lock is needed. Tables come from a store view: a
    histogram series there never changes, so a series seen before keeps its text.
    """

    def __init__(self) -> None:
        self._families: dict[tuple[str, bool], _Family] = {}

    def parts(self, tables: list[tuple[MetricSpec, Table]], openmetrics: bool) -> list[bytes]:
        """Each family's text, encoded: text format 0.0.4, or OpenMetrics 1.0 without
        its closing `# EOF` (the caller appends more families first)."""
        families = self._families
        out: list[bytes] = []
        for spec, table in tables:
            old = families.get((spec.name, openmetrics))
            if isinstance(table, HistogramFamily):
                new = _histogram(old, spec, table, openmetrics)
            else:
                new = _samples(old, spec, table, openmetrics)
            if new is not old:
                families[spec.name, openmetrics] = new
            out.append(new.data)
        return out

    def render(self, tables: list[tuple[MetricSpec, Table]], openmetrics: bool) -> str:
        """The parts as one text."""
        return b"".join(self.parts(tables, openmetrics)).decode()


def _samples(old: _Family | None, spec: MetricSpec, table: list[Sample], om: bool) -> _Family:
    """Counters and gauges, a line per sample."""
    rows = tuple(table)  # a copy: the caller's list may change
    seen = (rows, pack(f"{len(rows)}d", *map(_value, rows)))  # packed: 0.0 == -0.0
    if old is not None and old.seen == seen and _same(old.lines.spec, spec):
        return old
    lines = _fitting(old, spec, tuple(map(_label_values, rows)), None, om)
    floats = tuple(map(float, map(_value, rows)))
    text = lines.slots.copy()
    text[1::2] = map(repr, floats) if not floats or _plain(floats) else map(_spell, floats)
    return _Family(lines, seen, "".join(text).encode())


def _histogram(
    old: _Family | None,
    spec: MetricSpec,
    table: HistogramFamily,
    om: bool,
) -> _Family:
    """A series' lines: its cumulative bucket counts, `_count` (the last of them), `_sum`.
    A scrape's copy shares a series until it is observed again (histogram.py), so a
    series that is the same object as last time keeps its text."""
    series = tuple(table.series.values())
    lines = _fitting(old, spec, tuple(table.series), table.bounds, om)
    slots, width = lines.slots, len(table.bounds) + 3  # numbers a series: buckets, count, sum
    if old is not None and lines is old.lines:
        held, texts = cast("tuple[tuple[Series, ...], list[str]]", old.seen)
        if all(map(is_, series, held)):
            return old
        texts = [
            text if now is then else _series_text(slots, i, width, now)
            for i, (now, then, text) in enumerate(zip(series, held, texts, strict=True))
        ]
    else:
        texts = [_series_text(slots, i, width, s) for i, s in enumerate(series)]
    return _Family(lines, (series, texts), "".join((slots[0], *texts)).encode())


def _series_text(slots: list[str], index: int, width: int, series: Series) -> str:
    """The text after the family's header part that belongs to one series: its numbers,
    each followed by its line's end and the next line's start."""
    start = 1 + 2 * width * index
    text = slots[start : start + 2 * width]  # a copy
    ints = list(accumulate(series.counts))
    ints.append(ints[-1])  # _count
    text[0 : 2 * width - 2 : 2] = map(str, ints)
    text[2 * width - 2] = _spell(series.total)
    if max(ints) >= _EXACT:  # spelled with an exponent, so without the ".0" that follows
        for i, count in enumerate(ints):
            if count >= _EXACT:
                text[2 * i] = _go(count)
                text[2 * i + 1] = text[2 * i + 1].removeprefix(".0")
    return "".join(text)


def _same(kept: MetricSpec, spec: MetricSpec) -> bool:
    return kept is spec or kept == spec


def _fitting(
    old: _Family | None, spec: MetricSpec, keys: Keys, bounds: tuple[float, ...] | None, om: bool
) -> _Lines:
    """The family's last fixed text, unless its label sets changed."""
    if old is not None:
        lines = old.lines
        if lines.keys == keys and lines.bounds == bounds and _same(lines.spec, spec):
            return lines
    return _lines(spec, keys, bounds, om)


def _lines(
    spec: MetricSpec, keys: Keys, bounds: tuple[float, ...] | None, openmetrics: bool
) -> _Lines:
    """Labels sorted by name (`le` among them), as the library writes them."""
    name, labels = spec.name, spec.labels
    order = sorted(range(len(labels)), key=labels.__getitem__)
    split = sum(label < "le" for label in labels)  # labels before `le`
    les = le_values(bounds or ())
    # each line's text before its number, and after it
    starts: list[str] = []
    ends: list[str] = []
    tail = [*([".0\n"] * (len(les) + 1)), "\n"]  # a series' ends: int counts, then _sum
    for values in keys:
        if len(values) != len(labels):
            raise ValueError(f"{name}: label values {values!r} for labels {labels!r}")
        pairs = [f'{labels[i]}="{escape_label(values[i])}"' for i in order]
        braces = f"{{{','.join(pairs)}}}" if pairs else ""
        if bounds is None:
            starts.append(f"{name}{braces} ")
            ends.append("\n")
            continue
        before = "".join(f"{pair}," for pair in pairs[:split])
        after = "".join(f",{pair}" for pair in pairs[split:])
        bucket, close = f'{name}_bucket{{{before}le="', f'"{after}}} '
        starts += [f"{bucket}{le}{close}" for le in les]
        starts += (f"{name}_count{braces} ", f"{name}_sum{braces} ")
        ends += tail
    slots = [""] * (2 * len(starts) + 1)
    head = header(name, spec.kind, spec.help, openmetrics)
    slots[::2] = map(add, [head, *ends], [*starts, ""])
    return _Lines(spec, keys, bounds, slots)


def render(tables: list[tuple[MetricSpec, Table]], openmetrics: bool) -> str:
    """One-off rendering, without the cache."""
    return Exposition().render(tables, openmetrics)
