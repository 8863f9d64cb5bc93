"""parse_lmx_metrics (relay/parse.py): lines grouped into families with LMX's names, types and
help; an empty body is a valid empty read; valid text reads as the client library reads it."""

from __future__ import annotations

import pytest

from opta_exporter.core.labels import ModelCap
from opta_exporter.relay.parse import (
    RelayParse,
    cap_models,
    model_token_counts,
    parse_lmx_metrics,
    token_counts,
)
from tests.relay_bodies import (
    HEAD,
    HIST,
    LMX_BODY,
    WEIRD,
    assert_reads_as_the_library,
    tokens_body,
)


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
    assert_reads_as_the_library(body)


def test_client_ids_any_caller_sets_are_capped_like_models() -> None:
    """`lmx_client_*{client}` is keyed by the X-Client-Id header: 200 distinct callers
    must not make 200 series (nor starve the model label of its own slots)."""
    lines = ["# TYPE lmx_client_requests_total counter"]
    lines += [f'lmx_client_requests_total{{client="caller-{i}"}} {i}' for i in range(200)]
    lines += ["# TYPE lmx_model_requests_total counter"]
    lines += [f'lmx_model_requests_total{{model="m{i}"}} 1' for i in range(3)]
    cap = ModelCap(100)
    capped, refused = cap_models(parse_lmx_metrics("\n".join(lines) + "\n"), cap)
    clients = capped.families["lmx_client_requests_total"].samples
    assert len(clients) == 100
    assert refused == 100
    assert len(capped.families["lmx_model_requests_total"].samples) == 3
    # sticky: the same first hundred callers keep their series on the next read
    again, refused_again = cap_models(parse_lmx_metrics("\n".join(lines) + "\n"), cap)
    assert again.families["lmx_client_requests_total"].samples == clients
    assert refused_again == 100


# -- the throughput window's source: LMX's completion-token total and uptime -----------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (tokens_body("1200", "37.2"), (1200.0, 37.2)),
        (tokens_body("0", "0"), (0.0, 0.0)),  # a fresh LMX: a count all the same
        (tokens_body("1.5e6"), (1.5e6, None)),
        (tokens_body(None, "37.2"), (None, 37.2)),
        (tokens_body(None), (None, None)),
        (LMX_BODY, (None, 1.0)),  # a whole read without the counter
        ("", (None, None)),
        (tokens_body("NaN", "37.2"), (None, 37.2)),
        (tokens_body("-3", "-1"), (None, None)),  # a counter is never negative
        (tokens_body("+Inf", "1e400"), (None, None)),  # a broken body: no inf in the window
        # labelled: not the one unlabelled total this reads
        (
            "# TYPE lmx_completion_tokens_total counter\n"
            'lmx_completion_tokens_total{model="a"} 5\n',
            (None, None),
        ),
        # twice: the parse keeps the first sample of a series and drops the repeat
        (
            "# TYPE lmx_completion_tokens_total counter\n"
            "lmx_completion_tokens_total 5\nlmx_completion_tokens_total 6\n",
            (5.0, None),
        ),
    ],
    ids=[
        "both",
        "zero",
        "no uptime",
        "no counter",
        "neither",
        "LMX_BODY",
        "empty",
        "NaN counter",
        "negative",
        "infinite",
        "labelled",
        "twice",
    ],
)
def test_token_counts(body: str, expected: tuple[float | None, float | None]) -> None:
    assert token_counts(parse_lmx_metrics(body)) == expected


def test_token_counts_survive_the_model_cap() -> None:
    """The total is unlabelled: a cap of no models at all leaves it in the read."""
    parse, _ = cap_models(parse_lmx_metrics(tokens_body("99", "5")), ModelCap(0))
    assert token_counts(parse) == (99.0, 5.0)


MODEL_TOKENS = "# TYPE lmx_model_tokens_total counter\n"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            'lmx_model_tokens_total{model="a"} 5\nlmx_model_tokens_total{model="b"} 0\n',
            {"a": 5, "b": 0},
        ),
        ("", {}),
        ('lmx_model_tokens_total{model="a",x="y"} 5\n', {}),  # not LMX's shape: not a model's
        ("lmx_model_tokens_total 5\n", {}),
        ('lmx_model_tokens_total{model="a"} NaN\n', {}),
        ('lmx_model_tokens_total{model="a"} -3\n', {}),
        ('lmx_model_tokens_total{model="a"} +Inf\n', {}),
    ],
    ids=["two", "none", "other label", "unlabelled", "NaN", "negative", "infinite"],
)
def test_model_token_counts(lines: str, expected: dict[str, float]) -> None:
    assert model_token_counts(parse_lmx_metrics(MODEL_TOKENS + lines)) == expected


def test_model_token_counts_follow_only_the_models_the_cap_admits() -> None:
    body = MODEL_TOKENS + "".join(f'lmx_model_tokens_total{{model="m{i}"}} {i}\n' for i in range(9))
    parse, refused = cap_models(parse_lmx_metrics(body), ModelCap(3))
    assert model_token_counts(parse) == {"m0": 0, "m1": 1, "m2": 2}
    assert refused == 6


def test_new_family_names_on_every_read_cannot_grow_the_cap() -> None:
    cap = ModelCap(100, max_metrics=5)
    refused = 0
    for read in range(20):
        body = "".join(
            f'# TYPE lmx_x{read}_{i}_total counter\nlmx_x{read}_{i}_total{{model="m"}} 1\n'
            for i in range(50)
        )
        refused += cap_models(parse_lmx_metrics(body), cap)[1]
    assert refused == 20 * 50 - 5
    assert cap.metrics_tracked() == 5
