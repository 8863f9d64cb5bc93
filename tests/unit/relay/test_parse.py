"""The relay of LMX's /admin/metrics: parser tables, reads with `responses`, the collector
over a fake clock, the real simulator, and a scrape during a read that hangs."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from lmx_simulator import LmxSimulator
from opta_exporter.config import Config
from opta_exporter.relay.families import NOT_RELAYED, RELAY_METRICS, RelayCollector
from opta_exporter.relay.parse import RelayParse, parse_lmx_metrics
from opta_exporter.relay.reader import RelayReader, RelayView
from opta_exporter.relay.text import RelayText
from tests.helpers import promtool_check

WAIT = 10.0
LMX = "http://lmx.test:1234"
KEY = "s3cret-admin-key"
WEIRD = '/models/we"ird\\x.gguf'  # a quote and a backslash, as a local GGUF path can hold
WEIRD_ESCAPED = '/models/we\\"ird\\\\x.gguf'  # as the text format must carry it
HEAD = "# HELP lmx_requests_total Requests served.\n# TYPE lmx_requests_total counter\n"
HEAD += "lmx_requests_total 7"
TAIL = "# TYPE lmx_queued_requests gauge\nlmx_queued_requests 1"
SENTINELS = {("lmx_requests_total", (), 7.0), ("lmx_queued_requests", (), 1.0)}
Row = tuple[str, tuple[tuple[str, str], ...], float | str]


class FakeClock:
    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 500.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


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


@pytest.mark.parametrize("body", ["", "\n", "   \n\n"])
def test_an_empty_body_is_a_valid_empty_read(body: str) -> None:
    assert parse_lmx_metrics(body) == RelayParse({}, 0, 0)


def test_families_keep_lmx_names_types_and_help() -> None:
    parse = parse_lmx_metrics(
        "\n".join(
            [
                HEAD,
                "# TYPE lmx_speculative_acceptance_ratio gauge",
                "lmx_speculative_acceptance_ratio 0.5",
                f"# TYPE {HIST} histogram",
                f'{HIST}_bucket{{model="a",le="+Inf"}} 1',
                f'{HIST}_sum{{model="a"}} 0.5',
                "# TYPE lmx_other untyped",
                "lmx_other 2",
                "# TYPE lmx_widgets counter",
                "lmx_widgets 3",
            ]
        )
    )
    kinds = {name: f.kind for name, f in parse.families.items()}
    assert kinds == {
        "lmx_requests_total": "counter",
        "lmx_speculative_acceptance_ratio": "gauge",
        HIST: "histogram",
        "lmx_other": "unknown",
        "lmx_widgets": "counter",
    }
    assert parse.families["lmx_requests_total"].help == "Requests served."
    assert [s.name for s in parse.families["lmx_requests_total"].samples] == ["lmx_requests_total"]


# -- exposition checks --------------------------------------------------------------------


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


EQUIVALENCE_BODY = "\n".join(
    [
        '# HELP lmx_escaped_help Back\\\\slash, new\\nline and a \\"quote\\".',
        "# TYPE lmx_escaped_help gauge",
        'lmx_escaped_help{model="q\\"uote",path="b\\\\s",note="n\\nl",empty=""} 1.5',
        "# TYPE lmx_tokens counter",  # a counter without _total: the library renames it
        'lmx_tokens{model="a"} 3 1700000000000',  # with a timestamp
        "lmx_loose_sample 9",  # owned by no family: alone, untyped
        'lmx_tokens{model="b"} 4',  # after a foreign sample: alone too
        "# HELP lmx_latency_seconds Latency.",
        "# TYPE lmx_latency_seconds histogram",
        'lmx_latency_seconds_bucket{le="0.5"} 1',
        'lmx_latency_seconds_bucket{le="+Inf"} 2',
        "lmx_latency_seconds_sum 0.75",
        "lmx_latency_seconds_count 2",
        "# TYPE lmx_ratio summary",
        'lmx_ratio{quantile="0.5"} NaN',
        "lmx_ratio_sum +Inf",
        "lmx_ratio_count 0",
        "# TYPE lmx_things untyped",
        "lmx_things -1e-3",
        "# HELP lmx_help_only Help without a type.",
        "lmx_help_only 7",
        "# a comment that is no header",
        "# TYPE lmx_requests_total counter",
        'lmx_requests_total{model="a",outcome="ok",} 12',  # a trailing comma
    ]
)


@pytest.mark.parametrize(
    "body", [EQUIVALENCE_BODY, LMX_BODY.replace(WEIRD, "plain")], ids=["tricky", "lmx"]
)
def test_valid_text_reads_as_the_client_library_reads_it(body: str) -> None:
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


def test_relay_parse_reads_the_simulators_text_as_the_library_does() -> None:
    with LmxSimulator() as sim:
        sim.load_model("a/b", fmt="mlx")
        sim.record_request("a/b", latency_sec=0.2, ttft_sec=0.05, stream=True)
        body = sim.metrics_text()
    test_valid_text_reads_as_the_client_library_reads_it(body)


def fresh_view(body: str = LMX_BODY) -> RelayView:
    return RelayView(parse_lmx_metrics(body).families, 1.0, {"success": 1, "failure": 0})


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_served_relay_text_is_the_library_text(openmetrics: bool) -> None:
    """/metrics writes the relayed families itself (relay_text.write): byte for byte what
    the library writes from the same families, odd ids, NaN, summaries and untyped too."""
    source = StaticSource(fresh_view())
    registry = registry_for(source)
    if openmetrics:
        raw: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
        expected = raw.decode().removesuffix("# EOF\n")
    else:
        expected = generate_latest(registry).decode()
    assert "lmx_draft_ratio_sum" in expected
    assert WEIRD_ESCAPED in expected
    assert RelayText(source).render(openmetrics).decode() == expected


def test_collector_relays_under_lmx_names_and_skips_what_snapshots_give() -> None:
    registry = registry_for(StaticSource(fresh_view()))
    text = exposition(registry)
    got = registry.get_sample_value
    assert got("lmx_requests_total") == 7
    assert got("lmx_model_requests_total", {"model": WEIRD}) == 3
    assert got(f"{HIST}_bucket", {"model": WEIRD, "le": "1"}) == 2
    assert got(f"{HIST}_count", {"model": WEIRD}) == 3
    assert got(f"{HIST}_sum", {"model": WEIRD}) == 4.5
    assert got("lmx_kv_cache_hits_total") == 11  # a family a newer LMX adds
    assert got("lmx_draft_ratio", {"quantile": "0.5"}) == 0.25
    assert got("lmx_draft_ratio_count") == 4
    assert got("lmx_queued_requests") == 1
    assert math.isnan(got("lmx_speculative_acceptance_ratio") or 0.0)
    assert len(NOT_RELAYED) == 6
    for skipped in NOT_RELAYED:
        assert skipped in LMX_BODY
        assert skipped not in text
    assert "process_cpu_seconds_total" not in text  # not LMX's family
    assert "# TYPE lmx_requests_total counter\nlmx_requests_total 7.0\n" in text
    assert "# HELP lmx_requests_total Requests served.\n" in text
    assert "# TYPE lmx_kv_cache_hits_total counter\n" in text
    assert f"# TYPE {HIST} histogram\n" in text
    assert f'lmx_model_requests_total{{model="{WEIRD_ESCAPED}"}} 3.0' in text
    # no `_total` to keep a counter's name exact in prometheus_client: relayed untyped
    assert "# TYPE lmx_widgets untyped\nlmx_widgets 3.0\n" in text
    promtool_check(text)


def test_health_is_exposed_from_the_first_scrape() -> None:
    registry = registry_for(StaticSource(RelayView({}, None)))
    text = exposition(registry)
    assert names(registry) == {s.name.removesuffix("_total") for s in RELAY_METRICS}
    got = registry.get_sample_value
    assert got("opta_exporter_relay_reads_total", {"outcome": "success"}) == 0
    assert got("opta_exporter_relay_reads_total", {"outcome": "failure"}) == 0
    assert got("opta_exporter_relay_samples_dropped_total", {"reason": "unparseable"}) == 0
    assert got("opta_exporter_relay_samples_dropped_total", {"reason": "cap"}) == 0
    assert got("opta_exporter_relay_samples_repaired_total") == 0
    assert "# TYPE opta_exporter_relay_last_success_timestamp_seconds gauge" in text
    assert got("opta_exporter_relay_last_success_timestamp_seconds") is None
    assert "lmx_" not in text
    assert {f.name for f in RelayCollector(StaticSource(fresh_view())).describe()} == names(
        registry
    )
    promtool_check(text)


# -- reads ----------------------------------------------------------------------------------


def make_reader(
    clock: FakeClock | None = None, key: str | None = KEY, max_models: int = 100
) -> RelayReader:
    config = Config(lmx_url=LMX, admin_key=key, relay_interval=15.0, max_models=max_models)
    return RelayReader(config, requests.Session(), clock or FakeClock())


def test_read_sends_the_key_in_the_header_and_keeps_the_parse() -> None:
    reader = make_reader()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=LMX_BODY, status=200)
        assert reader.read_once()
        sent = rsps.calls[0].request
    assert sent.headers["X-Admin-Key"] == KEY
    assert sent.url == LMX + "/admin/metrics"  # never the query form
    view = reader.view()
    assert view.reads == {"success": 1, "failure": 0}
    assert view.repaired == 6
    assert view.last_success_wall == 1_700_000_000.0
    assert "lmx_model_requests_total" in view.families


def test_no_key_configured_sends_no_header() -> None:
    reader = make_reader(key=None)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body="")
        assert reader.read_once()  # an empty body is a valid empty read
        assert "X-Admin-Key" not in rsps.calls[0].request.headers


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (403, '{"detail": "Invalid or missing admin key"}', "HTTP 403, admin key refused"),
        (401, "", "HTTP 401, admin key refused"),
        (503, "", "HTTP 503"),
        (200, requests.ConnectTimeout("to " + LMX), "timed out"),
        (
            200,
            requests.ConnectionError("refused " + LMX),
            "cannot connect or read (ConnectionError)",
        ),
        (200, "<html>\n<body>Sign in</body>\n</html>\n", "3 unreadable line(s)"),
    ],
)
def test_failed_reads_count_and_log_once_without_the_key(
    caplog: pytest.LogCaptureFixture, status: int, body: str | Exception, reason: str
) -> None:
    caplog.set_level(logging.DEBUG)
    reader = make_reader()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=body, status=status)
        assert not reader.read_once()
        assert not reader.read_once()
    view = reader.view()
    assert view.reads == {"success": 0, "failure": 2}
    assert view.families == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert reason in warnings[0]
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert record.exc_info is None or KEY not in str(record.exc_info[1])


def test_a_failure_keeps_the_last_good_read_and_recovery_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    reader = make_reader(clock)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=LMX_BODY)
        rsps.add(responses.GET, LMX + "/admin/metrics", status=500)
        rsps.add(responses.GET, LMX + "/admin/metrics", body=LMX_BODY)
        assert reader.read_once()
        clock.advance(15)
        assert not reader.read_once()
        assert "lmx_requests_total" in reader.view().families  # not yet stale
        assert reader.read_once()
    assert reader.view().last_success_wall == clock.wall
    assert [r.getMessage() for r in caplog.records] == [
        "relay: reading LMX's /admin/metrics failed: HTTP 500",
        "relay: reading LMX's /admin/metrics works again",
    ]


def test_relayed_families_hide_after_three_intervals() -> None:
    clock = FakeClock()
    reader = make_reader(clock)
    registry = registry_for(reader)
    assert not any(n.startswith("lmx_") for n in names(registry))  # never read yet
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=LMX_BODY)
        rsps.add(responses.GET, LMX + "/admin/metrics", status=403)
        reader.read_once()
        read_at = clock.wall
        assert registry.get_sample_value("lmx_requests_total") == 7
        clock.advance(15)
        reader.read_once()
    clock.advance(30)  # exactly 3 intervals: still shown
    assert registry.get_sample_value("lmx_requests_total") == 7
    clock.advance(0.001)
    assert not any(n.startswith("lmx_") for n in names(registry))
    got = registry.get_sample_value
    assert got("opta_exporter_relay_reads_total", {"outcome": "failure"}) == 1
    assert got("opta_exporter_relay_last_success_timestamp_seconds") == read_at


def test_model_cap_is_applied_sticky_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    long_id = "m" * 257

    def body(models: list[str]) -> str:
        lines = [COUNTER, *(f'lmx_model_requests_total{{model="{x}"}} 1' for x in models)]
        lines += [f"# TYPE {HIST} histogram"]
        for x in models:
            lines += [f'{HIST}_bucket{{model="{x}",le="+Inf"}} 1', f'{HIST}_sum{{model="{x}"}} 1']
        return "\n".join(lines) + "\n"

    reader = make_reader(max_models=2)
    registry = registry_for(reader)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=body(["a", "b", "c", long_id]))
        rsps.add(responses.GET, LMX + "/admin/metrics", body=body(["c", "b", "a"]))
        reader.read_once()
        got = registry.get_sample_value
        assert got("opta_exporter_relay_samples_dropped_total", {"reason": "cap"}) == 6
        reader.read_once()  # a new order must not swap which models are shown
    assert got("opta_exporter_relay_samples_dropped_total", {"reason": "cap"}) == 9
    shown = {
        s.labels["model"] for f in registry.collect() for s in f.samples if "model" in s.labels
    }
    assert shown == {"a", "b"}
    assert sum("model cap" in r.getMessage() for r in caplog.records) == 2
    promtool_check(exposition(registry))


def test_run_reads_until_stopped_and_survives_a_bug(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()

    class Broken(requests.Session):
        def get(self, *args: object, **kwargs: object) -> requests.Response:
            stop.set()
            raise RuntimeError("bug")

    reader = RelayReader(Config(lmx_url=LMX), Broken(), FakeClock())
    reader.run(stop)  # returns: the stop was set during the read
    assert "unexpected error" in caplog.text
    reader.run(stop)  # an already set stop returns without reading


# -- the real simulator -------------------------------------------------------------------


@pytest.fixture
def keyed_sim() -> Iterator[LmxSimulator]:
    with LmxSimulator(admin_key=KEY) as simulator:
        yield simulator


def test_simulator_weird_model_relayed_escaped(keyed_sim: LmxSimulator) -> None:
    for latency in (0.2, 0.7, 3.0):
        keyed_sim.record_request(WEIRD, latency_sec=latency, completion_tokens=5)
    keyed_sim.record_request("mlx-community/Qwen3-8B-4bit", latency_sec=0.05)
    clock = FakeClock()
    reader = RelayReader(Config(lmx_url=keyed_sim.url, admin_key=KEY), requests.Session(), clock)
    registry = registry_for(reader)
    assert reader.read_once()
    _, path, headers = keyed_sim.requests_seen[-1]
    assert (path, headers.get("X-Admin-Key")) == ("/admin/metrics", KEY)
    got = registry.get_sample_value
    assert got("lmx_model_requests_total", {"model": WEIRD}) == 3
    assert got("lmx_model_tokens_total", {"model": WEIRD}) == 15
    assert got("lmx_requests_total") == 4
    assert got(f"{HIST}_bucket", {"model": WEIRD, "le": "0.5"}) == 1
    assert got(f"{HIST}_bucket", {"model": WEIRD, "le": "1"}) == 2
    assert got(f"{HIST}_bucket", {"model": WEIRD, "le": "+Inf"}) == 3
    assert got(f"{HIST}_sum", {"model": WEIRD}) == pytest.approx(3.9)
    assert got(f"{HIST}_count", {"model": "mlx-community/Qwen3-8B-4bit"}) == 1
    assert got("opta_exporter_relay_samples_repaired_total") == 3 + 12  # 3 counters + histogram
    text = exposition(registry)
    assert f'lmx_model_requests_total{{model="{WEIRD_ESCAPED}"}} 3.0' in text
    assert "lmx_uptime_seconds" not in text
    promtool_check(text)


def test_simulator_stopped_then_restarted(keyed_sim: LmxSimulator) -> None:
    keyed_sim.record_request(WEIRD)
    keyed_sim.record_request(WEIRD)
    clock = FakeClock()
    config = Config(lmx_url=keyed_sim.url, admin_key=KEY, relay_interval=15.0)
    reader = RelayReader(config, requests.Session(), clock)
    registry = registry_for(reader)
    got = registry.get_sample_value
    assert reader.read_once()
    assert got("lmx_model_requests_total", {"model": WEIRD}) == 2

    keyed_sim.stop()
    for _ in range(3):
        clock.advance(15)
        assert not reader.read_once()
    assert got("lmx_model_requests_total", {"model": WEIRD}) == 2  # 3 intervals: still shown
    clock.advance(1)
    assert not any(n.startswith("lmx_") for n in names(registry))
    assert got("opta_exporter_relay_reads_total", {"outcome": "failure"}) == 3
    assert got("opta_exporter_relay_last_success_timestamp_seconds") == clock.wall - 46

    keyed_sim.start()  # same port; LMX's counters restart at zero
    assert reader.read_once()
    assert got("lmx_requests_total") == 0
    assert got("lmx_model_requests_total", {"model": WEIRD}) is None
    keyed_sim.record_request(WEIRD)
    assert reader.read_once()
    assert got("lmx_model_requests_total", {"model": WEIRD}) == 1
    assert got("opta_exporter_relay_reads_total", {"outcome": "success"}) == 3
    promtool_check(exposition(registry))


# -- a scrape never waits for a read --------------------------------------------------------


class HangingLmx(ThreadingHTTPServer):
    """Answers /admin/metrics only once `release` is set; `entered` says a read is held."""

    daemon_threads = True

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _HangingHandler)


class _HangingHandler(BaseHTTPRequestHandler):
    server: HangingLmx

    def do_GET(self) -> None:
        self.server.entered.set()
        self.server.release.wait(WAIT)
        body = b"# TYPE lmx_requests_total counter\nlmx_requests_total 5\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


def test_a_scrape_during_a_slow_read_returns_at_once() -> None:
    lmx = HangingLmx()
    serving = threading.Thread(target=lmx.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    stop = threading.Event()
    url = f"http://127.0.0.1:{lmx.server_address[1]}"
    reader = RelayReader(Config(lmx_url=url, relay_interval=60.0), requests.Session())
    registry = registry_for(reader)
    relay = threading.Thread(target=reader.run, args=(stop,))
    relay.start()
    try:
        assert lmx.entered.wait(WAIT)
        text = exposition(registry)  # while the read is held by LMX
        assert reader.view().reads == {"success": 0, "failure": 0}
        assert not lmx.release.is_set()
        assert 'opta_exporter_relay_reads_total{outcome="success"} 0.0' in text
    finally:
        lmx.release.set()
        assert reader.wait_for_reads(1, WAIT)
        stop.set()
        relay.join(WAIT)
        lmx.shutdown()
        lmx.server_close()
        serving.join(WAIT)
    assert not relay.is_alive()
    assert registry.get_sample_value("lmx_requests_total") == 5
