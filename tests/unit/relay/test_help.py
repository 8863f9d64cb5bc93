"""Relayed families keep LMX's own HELP text (escaped back as it came); a family LMX gave
none gets the generic one."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from opta_exporter.relay.families import FALLBACK_HELP
from tests.relay_bodies import StaticSource, exposition, fresh_view, registry_for

BODY = "\n".join(
    [
        "# HELP lmx_requests_total Requests served.",
        "# TYPE lmx_requests_total counter",
        "lmx_requests_total 7",
        "# HELP lmx_queued_requests Requests waiting for a slot.",
        "# TYPE lmx_queued_requests gauge",
        "lmx_queued_requests 1",
        "# HELP lmx_request_duration_seconds Time to answer, in s.",
        "# TYPE lmx_request_duration_seconds histogram",
        'lmx_request_duration_seconds_bucket{le="1"} 1',
        'lmx_request_duration_seconds_bucket{le="+Inf"} 2',
        "lmx_request_duration_seconds_sum 1.5",
        "lmx_request_duration_seconds_count 2",
        "# HELP lmx_draft_ratio Accepted draft tokens (share).",
        "# TYPE lmx_draft_ratio summary",
        'lmx_draft_ratio{quantile="0.5"} 0.25',
        "lmx_draft_ratio_sum 1",
        "lmx_draft_ratio_count 4",
        "# HELP lmx_odd_help A backslash \\\\ and a line\\nbreak.",
        "# TYPE lmx_odd_help gauge",
        "lmx_odd_help 2",
        "# TYPE lmx_kv_cache_hits_total counter",
        "lmx_kv_cache_hits_total 11",
        "lmx_bare 3",
        "",
    ]
)


def _helps() -> dict[str, str]:
    text = exposition(registry_for(StaticSource(fresh_view(BODY))))
    return {m.name: m.documentation for m in text_string_to_metric_families(text)}


def test_lmx_help_text_is_kept_for_every_type() -> None:
    helps = _helps()
    assert helps["lmx_requests"] == "Requests served."  # the parser drops `_total`
    assert helps["lmx_queued_requests"] == "Requests waiting for a slot."
    assert helps["lmx_request_duration_seconds"] == "Time to answer, in s."
    # a summary goes out untyped, one family per sample name, each with LMX's HELP
    assert helps["lmx_draft_ratio"] == "Accepted draft tokens (share)."
    assert helps["lmx_draft_ratio_count"] == "Accepted draft tokens (share)."


def test_escapes_in_lmx_help_round_trip() -> None:
    assert _helps()["lmx_odd_help"] == "A backslash \\ and a line\nbreak."


def test_a_family_without_help_gets_the_generic_text() -> None:
    helps = _helps()
    assert helps["lmx_kv_cache_hits"] == FALLBACK_HELP
    assert helps["lmx_bare"] == FALLBACK_HELP
