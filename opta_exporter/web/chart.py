"""The live page's tokens/s chart: the total and each model's line as inline SVG, drawn
here for the server's first paint and in static/live.js for every later one, the same
way (same frame, same coordinates, same text), so the two never disagree.

The per-model lines come from LMX's per-model completion-token counters (one window per
model). Past MAX_LINES models a chart is a tangle, so the document carries only the
busiest (the highest mean tokens/s over the window; web/live.py picks them with `drawn`)
and the legend counts the rest.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DASH = "—"
WIDTH, HEIGHT = 600, 160
MAX_LINES = 6  # per-model lines drawn; live.css has a colour for each

Pair = tuple[float, float]  # (unix seconds, tokens/s)


def escape(value: object) -> str:
    """Text from LMX (model ids above all) as HTML text or an attribute's value."""
    return html.escape(str(value), quote=True)


def number(value: Any) -> float | None:
    """A document's number, or None for null, a boolean or anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def pairs(samples: Any) -> list[Pair]:
    """A document's [[unix_s, tokens_per_s], ...] with any malformed or null pair left out."""
    if not isinstance(samples, list):
        return []
    kept = []
    for s in samples:
        if isinstance(s, list | tuple) and len(s) == 2:
            t, r = number(s[0]), number(s[1])
            if t is not None and r is not None:
                kept.append((t, r))
    return kept


@dataclass(frozen=True)
class Frame:
    """What the lines share: the time span across and the tokens/s at the top."""

    t0: float
    span: float
    top: float


def frame(series: Iterable[Sequence[Pair]]) -> Frame | None:
    every = [p for line in series for p in line]
    if not every:
        return None
    t0, t1 = min(t for t, _ in every), max(t for t, _ in every)
    return Frame(t0, max(t1 - t0, 1.0), max(*(r for _, r in every), 1.0))


def points(line: Sequence[Pair], fr: Frame) -> list[tuple[float, float]]:
    """SVG coordinates in the chart's viewBox, the newest on the right."""
    return [
        (
            round((t - fr.t0) / fr.span * WIDTH, 1),
            round(HEIGHT - r / fr.top * (HEIGHT - 10), 1),
        )
        for t, r in line
    ]


def drawn(models: Mapping[str, Sequence[Pair]]) -> list[str]:
    """The models with a line: at most MAX_LINES, the busiest, listed by id (a model's
    colour is its place in that list)."""
    busiest = sorted(
        (m for m, line in models.items() if line),
        key=lambda m: (-sum(r for _, r in models[m]) / len(models[m]), m),
    )
    return sorted(busiest[:MAX_LINES])


def _polyline(attrs: str, coords: list[tuple[float, float]]) -> str:
    return f'<polyline {attrs} points="{" ".join(f"{x},{y}" for x, y in coords)}"/>'


def render(throughput: Mapping[str, Any]) -> str:
    total = pairs(throughput.get("samples"))
    raw = throughput.get("models")
    models = {str(m): pairs(s) for m, s in raw.items()} if isinstance(raw, Mapping) else {}
    shown = drawn(models)
    fr = frame([total, *(models[m] for m in shown)])
    lines = "".join(
        _polyline(
            f'class="model s{i}" data-model="{escape(m)}"', points(models[m], fr) if fr else []
        )
        for i, m in enumerate(shown)
    )
    legend = "".join(
        f'<li class="s{i}" data-model="{escape(m)}"><span class="key"></span> '
        f"<span>{escape(m)}</span> <strong>{models[m][-1][1]:.1f}</strong> tokens/s</li>"
        for i, m in enumerate(shown)
    )
    followed = number(throughput.get("models_with_samples"))
    hidden = (len(shown) if followed is None else int(followed)) - len(shown)
    if hidden > 0:
        legend += f'<li class="more">and {hidden} more, not drawn</li>'
    latest = f"{total[-1][1]:.1f} tokens/s" if total else DASH
    peak = f"{max(r for _, r in total):.1f}" if total else DASH
    window = number(throughput.get("window_seconds"))
    span = DASH if window is None else f"{window:.0f} s"
    resolution = number(throughput.get("resolution_seconds"))
    every = DASH if resolution is None else f"{resolution:g} s"
    return (
        f'<figure><svg id="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'preserveAspectRatio="none" role="img" data-count="{len(total)}" '
        f'aria-label="tokens per second over the last {escape(span)}, total and per model">'
        + f'<g id="chart-models">{lines}</g>'  # below the total, which is drawn last
        + _polyline('id="chart-line"', points(total, fr) if fr else [])
        + "</svg>"
        f'<figcaption>Tokens/s: latest <strong id="tps-latest">{escape(latest)}</strong>, '
        f'peak <span id="tps-peak">{escape(peak)}</span>, over the last '
        f'<span id="tps-window">{escape(span)}</span>, a sample every '
        f'<span id="tps-resolution">{escape(every)}</span> now'
        f'<ul id="chart-legend" class="legend">{legend}</ul></figcaption></figure>'
    )
