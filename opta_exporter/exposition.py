"""The exporter's own families, written straight from a state copy.

prometheus_client builds a Sample object, a label dict and an escaped label string for
every one of the ~3,700 samples 100 models make (36 ms a scrape, 55 ms in OpenMetrics);
writing the same text from the tables, escaping each model id once, takes a few ms. The
output parses to exactly what the client library writes (tests/test_exposition.py), and
the library still serves everything else: negotiation, the relay's families, `name[]`.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.utils import floatToGoString

from opta_exporter.collector import MetricSpec, Table
from opta_exporter.histogram import HistogramFamily, Series

# Below this a whole number is spelled "<n>.0" by the library (Go-style exponents start
# at 1e6), so it can be written without the library's call.
_EXACT = 10**6
# The library's own float spelling (`+Inf`, Go-style exponents), typed for mypy.
_fmt: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


SeriesKey = tuple[str, tuple[str, ...]]
LabelKey = tuple[tuple[str, ...], tuple[str, ...]]


class Exposition:
    """Writes the tables; keeps each histogram series' lines until the series changes.

    Histogram lines are two thirds of a scrape at 100 models, and between two scrapes
    most series see no new observation. Concurrent scrapes each build a fresh cache from
    the last one and swap it in whole, so no lock is needed.
    """

    def __init__(self) -> None:
        self._histograms: dict[SeriesKey, tuple[int, float, str]] = {}
        self._labelsets: dict[LabelKey, str] = {}  # (names, values) -> "{...}", escaped

    def render(self, tables: list[tuple[MetricSpec, Table]], openmetrics: bool) -> str:
        """Text format 0.0.4, or OpenMetrics 1.0 without its closing `# EOF` (the caller
        appends more families first)."""
        out: list[str] = []
        escaped: dict[str, str] = {}
        previous, cache = self._histograms, {}
        known: dict[LabelKey, str] = self._labelsets
        seen: dict[LabelKey, str] = {}

        def labels(names: tuple[str, ...], values: tuple[str, ...]) -> list[tuple[str, str]]:
            """Sorted by name, as the library writes them."""
            pairs = []
            for name, value in zip(names, values, strict=True):
                esc = escaped.get(value)
                if esc is None:
                    esc = escaped[value] = _escape(value)
                pairs.append((name, f'{name}="{esc}"'))
            pairs.sort()
            return pairs

        for spec, table in tables:
            name, kind = spec.name, spec.kind
            header = name
            if kind == "counter" and openmetrics:
                header = name.removesuffix("_total")
            help_text = spec.help.replace("\\", "\\\\").replace("\n", "\\n")
            if openmetrics:
                help_text = help_text.replace('"', '\\"')
            out.append(f"# HELP {header} {help_text}\n# TYPE {header} {kind}\n")
            if isinstance(table, HistogramFamily):
                les = [f'le="{le}"' for le in table.les]
                for values, series in table.series.items():
                    key, count = (name, values), sum(series.counts)
                    hit = previous.get(key)
                    if hit is None or hit[0] != count or hit[1] != series.total:
                        lines = _histogram_lines(name, les, labels(spec.labels, values), series)
                        hit = (count, series.total, lines)
                    cache[key] = hit
                    out.append(hit[2])
                continue
            for values, value in table:
                braces = ""
                if values:
                    braces = seen.get((spec.labels, values)) or known.get((spec.labels, values), "")
                    if not braces:
                        plain = ",".join(text for _, text in labels(spec.labels, values))
                        braces = f"{{{plain}}}"
                    seen[spec.labels, values] = braces
                if 1.0 <= value < _EXACT and value.is_integer():
                    number = f"{int(value)}.0"
                elif value == 0.0:
                    number = repr(float(value))  # keeps the sign of -0.0, as the library does
                else:
                    number = _fmt(value)
                out.append(f"{name}{braces} {number}\n")
        self._histograms, self._labelsets = cache, seen
        return "".join(out)


def _histogram_lines(
    name: str, les: list[str], pairs: list[tuple[str, str]], series: Series
) -> str:
    """`le` sorts among the labels as the library sorts it."""
    before = "".join(f"{text}," for label, text in pairs if label < "le")
    after = "".join(f",{text}" for label, text in pairs if label > "le")
    out, running = [], 0
    for le, count in zip(les, series.counts, strict=True):
        running += count
        # an int count is what repr(float) spells as "<n>.0", minus its call
        value = f"{running}.0" if running < _EXACT else _fmt(running)
        out.append(f"{name}_bucket{{{before}{le}{after}}} {value}\n")
    plain = ",".join(text for _, text in pairs)
    braces = f"{{{plain}}}" if plain else ""
    out.append(f"{name}_count{braces} {_fmt(running)}\n{name}_sum{braces} {_fmt(series.total)}\n")
    return "".join(out)


def render(tables: list[tuple[MetricSpec, Table]], openmetrics: bool) -> str:
    """One-off rendering, without the cache."""
    return Exposition().render(tables, openmetrics)
