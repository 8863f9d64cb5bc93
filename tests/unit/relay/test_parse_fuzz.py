"""Fuzz: the relay's parser and cap (relay/parse.py) take any text, LMX-like lines and
arbitrary Unicode alike, never raise, never keep more than the series cap, and what they
keep re-exposes as text promtool accepts. Bounded examples: seconds, not minutes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opta_exporter.core.labels import ModelCap
from opta_exporter.relay.parse import cap_models, parse_lmx_metrics
from tests.helpers import promtool_check
from tests.relay_bodies import StaticSource, exposition, fresh_view, registry_for

NAMES = st.sampled_from(
    [
        "lmx_requests_total",
        "lmx_queue",
        "lmx_wait_seconds",
        "lmx_wait_seconds_bucket",
        "lmx_wait_seconds_sum",
    ]
)
VALUES = st.sampled_from(["1", "NaN", "+Inf", "-Inf", "1e999", "1" + "0" * 400, "-3.5", "x"])
LABELS = st.dictionaries(
    st.sampled_from(["model", "client", "route"]),
    st.text(max_size=6) | st.sampled_from(["+Inf", "0.5", 'a"b\\c']),
    max_size=3,
)
SAMPLE = st.builds(
    lambda name, labels, value: (
        name
        + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        + " "
        + value
    ),
    NAMES,
    LABELS,
    VALUES,
)
# Each family declared with a type its name suits: promtool also lints names, and LMX's
# names are relayed as LMX wrote them.
DECLARED = {
    "lmx_requests_total": ("counter", "untyped"),
    "lmx_queue": ("gauge", "untyped", "text"),
    "lmx_wait_seconds": ("histogram", "summary", "gauge"),
}
HEADER = st.sampled_from(list(DECLARED)).flatmap(
    lambda name: st.builds(
        lambda kind, declared: f"# {kind} {name} {declared}",
        st.sampled_from(["HELP", "TYPE"]),
        st.sampled_from(DECLARED[name]),
    )
)
LINES = st.lists(SAMPLE | HEADER | st.text(max_size=30), max_size=40).map("\n".join)
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text=LINES | st.text(), max_series=st.integers(min_value=0, max_value=12))
def test_any_text_parses_capped_and_re_exposes_valid(text: str, max_series: int) -> None:
    parse = parse_lmx_metrics(text, max_series)
    assert parse.sample_count <= max_series
    capped, _refused = cap_models(parse, ModelCap(2))
    view = fresh_view()
    view = type(view)(capped.families, view.last_success_wall, view.reads, 0, {})
    promtool_check(exposition(registry_for(StaticSource(view))))
