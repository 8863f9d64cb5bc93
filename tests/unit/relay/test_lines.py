"""Line repair (relay/lines.py), through parse_lmx_metrics: LMX's unescaped label values
re-escaped, what cannot be read dropped line by line, each counted -- a table, and any
id LMX writes raw comes back."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opta_exporter.relay.parse import parse_lmx_metrics
from tests.relay_bodies import COUNTER, HEAD, HIST, SENTINELS, TAIL, WEIRD, Row, m, rows

# (middle lines, samples expected besides the sentinels, repaired, dropped)
PARSER_TABLE: dict[str, tuple[list[str], set[Row], int, int]] = {
    "valid, escaped": (
        [
            COUNTER,
            r'lmx_model_requests_total{model="a\"b\\c"} 2',
            'lmx_model_requests_total{model="p"} 1',
        ],
        {m('a"b\\c', 2.0), m("p", 1.0)},
        0,
        0,
    ),
    "quote": (
        [COUNTER, 'lmx_model_requests_total{model="/m/we"ird.gguf"} 3'],
        {m('/m/we"ird.gguf', 3.0)},
        1,
        0,
    ),
    "backslash": (
        [COUNTER, r'lmx_model_requests_total{model="/m/we\x.gguf"} 3'],
        {m("/m/we\\x.gguf", 3.0)},
        1,
        0,
    ),
    "backslash before the closing quote": (
        [COUNTER, r'lmx_model_requests_total{model="dir\"} 2'],
        {m("dir\\", 2.0)},
        1,
        0,
    ),
    "both, in a histogram before le": (
        [
            f"# TYPE {HIST} histogram",
            f'{HIST}_bucket{{model="{WEIRD}",le="0.5"}} 1',
            f'{HIST}_bucket{{model="{WEIRD}",le="+Inf"}} 2',
            f'{HIST}_sum{{model="{WEIRD}"}} 3.3',
            f'{HIST}_count{{model="{WEIRD}"}} 2',
        ],
        {
            (f"{HIST}_bucket", (("le", "0.5"), ("model", WEIRD)), 1.0),
            (f"{HIST}_bucket", (("le", "+Inf"), ("model", WEIRD)), 2.0),
            (f"{HIST}_sum", (("model", WEIRD),), 3.3),
            (f"{HIST}_count", (("model", WEIRD),), 2.0),
        },
        4,
        0,
    ),
    "a raw body keeps escape-like text literal": (
        [
            COUNTER,
            'lmx_model_requests_total{model="we"ird"} 1',
            r'lmx_model_requests_total{model="C:\\m\new"} 2',
        ],
        {m('we"ird', 1.0), m(r"C:\\m\new", 2.0)},
        2,
        0,
    ),
    "comma and quote inside an id": (
        [COUNTER, 'lmx_model_requests_total{model="a",b"} 1'],
        {m('a",b', 1.0)},
        1,
        0,
    ),
    "brace inside an id is valid text": (
        [COUNTER, 'lmx_model_requests_total{model="x} 1"} 2'],
        {m("x} 1", 2.0)},
        0,
        0,
    ),
    "emoji": (
        [COUNTER, 'lmx_model_requests_total{model="🦙 llama"} 4'],
        {m("🦙 llama", 4.0)},
        0,
        0,
    ),
    "emoji and a quote": (
        [COUNTER, 'lmx_model_requests_total{model="🦙 "big""} 5'],
        {m('🦙 "big"', 5.0)},
        1,
        0,
    ),
    "newline inside an id": (
        [
            COUNTER,
            'lmx_model_requests_total{model="line',
            'break"} 3',
            'lmx_model_requests_total{model="ok"} 1',
        ],
        {m("ok", 1.0)},
        0,
        2,
    ),
    "truncated lines": (
        [
            COUNTER,
            'lmx_model_requests_total{model="ab',
            "lmx_errors_tot",
            "lmx_errors_total",
            'lmx_model_requests_total{model="a"} ',
            "# TYPE lmx_x",
            'lmx_model_requests_total{model="b"} 9',
        ],
        {m("b", 9.0)},
        0,
        4,
    ),
    "truncated histogram series": (
        [
            f"# TYPE {HIST} histogram",
            f'{HIST}_bucket{{model="a",le="1"}} 1',
            f'{HIST}_bucket{{model="a",le="+Inf"}} 1',
            f'{HIST}_sum{{model="a"}} 0.5',
            f'{HIST}_count{{model="a"}} 1',
            f'{HIST}_bucket{{model="b",le="1"}} 1',
        ],
        {
            (f"{HIST}_bucket", (("le", "1"), ("model", "a")), 1.0),
            (f"{HIST}_bucket", (("le", "+Inf"), ("model", "a")), 1.0),
            (f"{HIST}_sum", (("model", "a"),), 0.5),
            (f"{HIST}_count", (("model", "a"),), 1.0),
        },
        0,
        1,
    ),
    "NaN": (
        ["# TYPE lmx_speculative_acceptance_ratio gauge", "lmx_speculative_acceptance_ratio NaN"],
        {("lmx_speculative_acceptance_ratio", (), "NaN")},
        0,
        0,
    ),
    "untyped": (
        ['lmx_new_thing{kind="x"} 5', "# TYPE lmx_other untyped", "lmx_other 2"],
        {("lmx_new_thing", (("kind", "x"),), 5.0), ("lmx_other", (), 2.0)},
        0,
        0,
    ),
    "HTML from a proxy": (
        [
            "<html>",
            "<head><title>502 Bad Gateway</title></head>",
            '<body><center><h1 class="x">502</h1></center>',
            "</body>",
            "</html>",
        ],
        set(),
        0,
        5,
    ),
    "garbage does not make a body raw": (
        ["<p>oops</p>", r'lmx_x{model="a\\b"} 1'],
        {("lmx_x", (("model", "a\\b"),), 1.0)},
        0,
        1,
    ),
    "duplicate series": (
        [COUNTER, 'lmx_model_requests_total{model="a"} 1', 'lmx_model_requests_total{model="a"} 2'],
        {m("a", 1.0)},
        0,
        1,
    ),
    "an empty label value is an absent label": (['lmx_x{model=""} 1'], {("lmx_x", (), 1.0)}, 0, 0),
    "a counter LMX named without _total": (
        ["# TYPE lmx_widgets counter", "lmx_widgets 3"],
        {("lmx_widgets", (), 3.0)},
        0,
        0,
    ),
    "CRLF line ends": (["lmx_x 1\r"], {("lmx_x", (), 1.0)}, 0, 0),
}


@pytest.mark.parametrize(
    ("middle", "expected", "repaired", "dropped"),
    PARSER_TABLE.values(),
    ids=PARSER_TABLE.keys(),
)
def test_parser_table(middle: list[str], expected: set[Row], repaired: int, dropped: int) -> None:
    parse = parse_lmx_metrics("\n".join([HEAD, *middle, TAIL]) + "\n")
    assert rows(parse) == expected | SENTINELS
    assert (parse.repaired, parse.dropped) == (repaired, dropped)


# Any id but one holding a newline (the line splits) or `",name="` (reads as a label
# boundary: LMX's text cannot tell them apart) comes back exactly, beside WEIRD.
IDS = st.text(st.characters(exclude_characters="\n", exclude_categories=["Cs"]), min_size=1)


@settings(max_examples=300, deadline=None)
@given(IDS.filter(lambda x: x != WEIRD and not re.search(r'",[a-zA-Z_]\w*="', x)))
def test_any_id_lmx_writes_raw_is_recovered(model_id: str) -> None:
    lines = [COUNTER, f"# TYPE {HIST} histogram"]
    for x in (WEIRD, model_id):
        lines.insert(1, f'lmx_model_requests_total{{model="{x}"}} 1')
        lines += [f'{HIST}_bucket{{model="{x}",le="+Inf"}} 2', f'{HIST}_sum{{model="{x}"}} 3']
    parse = parse_lmx_metrics("\n".join(lines))
    assert parse.dropped == 0
    for name in ("lmx_model_requests_total", HIST):
        models = {s.labels["model"] for s in parse.families[name].samples}
        assert models == {WEIRD, model_id}
