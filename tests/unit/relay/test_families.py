"""RelayCollector (relay/families.py): LMX's families under LMX's names, minus what snapshots
give, and the relay's own health from the first scrape."""

from __future__ import annotations

import math

from opta_exporter.relay.families import NOT_RELAYED, RELAY_METRICS, RelayCollector
from opta_exporter.relay.reader import RelayView
from tests.helpers import promtool_check
from tests.relay_bodies import (
    HIST,
    LMX_BODY,
    WEIRD,
    WEIRD_ESCAPED,
    StaticSource,
    exposition,
    fresh_view,
    names,
    registry_for,
)


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
