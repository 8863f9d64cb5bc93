"""The live page's tokens/s chart (web/chart.py): the total and each model's line share
one frame, only the busiest models are drawn, and model ids stay text."""

from __future__ import annotations

import re

from opta_exporter.web.chart import HEIGHT, MAX_LINES, WIDTH, drawn, pairs, render

T = 1_700_000_000.0


def polylines(html: str) -> dict[str, str]:
    """data-model (or id) -> points of each polyline."""
    found = {}
    for attrs, pts in re.findall(r"<polyline ([^>]*?)points=\"([^\"]*)\"/>", html):
        key = re.search(r'(?:data-model|id)="([^"]*)"', attrs)
        assert key
        found[key.group(1)] = pts
    return found


def test_total_and_models_share_one_frame() -> None:
    html = render(
        {
            "window_seconds": 300.0,
            "samples": [[T, 100.0], [T + 10, 50.0]],
            "models": {"a": [[T, 60.0], [T + 10, 50.0]], "b": [[T + 10, 0.0]]},
        }
    )
    lines = polylines(html)
    top = HEIGHT - 10
    assert lines["chart-line"] == f"0.0,{HEIGHT - top:.1f} {WIDTH:.1f},{HEIGHT - top / 2:.1f}"
    assert lines["a"] == f"0.0,{HEIGHT - top * 0.6:.1f} {WIDTH:.1f},{HEIGHT - top / 2:.1f}"
    assert lines["b"] == f"{WIDTH:.1f},{HEIGHT:.1f}"  # the same time axis: on the right
    legend = re.sub(r"<[^>]+>", "|", html.split('id="chart-legend"')[1])
    assert "a| |50.0| tokens/s" in legend
    assert "b| |0.0| tokens/s" in legend
    assert 'class="s0" data-model="a"' in html
    assert 'class="s1" data-model="b"' in html


def test_only_the_busiest_models_are_drawn_and_the_rest_are_counted() -> None:
    models = {f"m{i:02}": [[T, float(i)], [T + 1, float(i)]] for i in range(MAX_LINES + 3)}
    html = render({"samples": [], "models": models, "models_with_samples": MAX_LINES + 3})
    expected = [f"m{i:02}" for i in range(3, MAX_LINES + 3)]  # the quietest three are not
    assert drawn({m: [(t, r) for t, r in s] for m, s in models.items()}) == expected
    assert sorted(k for k in polylines(html) if k != "chart-line") == expected
    assert "and 3 more, not drawn" in html


def test_a_model_id_is_text_never_markup() -> None:
    odd = 'x"/><script>alert(1)</script>'
    html = render({"samples": [[T, 1.0]], "models": {odd: [[T, 1.0]]}})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_malformed_samples_are_left_out() -> None:
    html = render({"samples": [[1.0, 10.0], [2.0, None], [3.0, 20.0]], "models": {}})
    assert polylines(html) == {"chart-line": "0.0,85.0 600.0,10.0"}
    assert pairs([[1.0], "x", [True, 3.0], None]) == []
    assert pairs(None) == []
    assert polylines(render({"samples": [], "models": {"a": "nonsense", "b": []}})) == {
        "chart-line": ""
    }
