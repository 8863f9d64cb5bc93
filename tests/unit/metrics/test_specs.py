"""METRICS (metrics/specs.py): unique names that follow the conventions, and one list per
source -- the relay's own health families are the relay collector's, not METRICS'."""

from __future__ import annotations

import re

from opta_exporter.metrics.specs import METRICS
from opta_exporter.relay.families import RELAY_METRICS


def test_metric_names_are_unique_and_follow_conventions() -> None:
    names = [spec.name for spec in METRICS]
    assert len(set(names)) == len(names)
    for spec in METRICS:
        assert re.fullmatch(r"opta_(lmx|exporter)_[a-z0-9_]+", spec.name)
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name
        assert spec.help


RELAY_HEALTH = frozenset(
    {
        "opta_exporter_relay_reads_total",
        "opta_exporter_relay_last_success_timestamp_seconds",
        "opta_exporter_relay_samples_repaired_total",
        "opta_exporter_relay_samples_dropped_total",
    }
)


def test_relay_health_families_live_in_the_relay_collector() -> None:
    """The relay's own health is exported by the relay collector, everything else by
    METRICS: one list per source, no family in both."""
    assert {spec.name for spec in RELAY_METRICS} == RELAY_HEALTH
    assert not RELAY_HEALTH & {spec.name for spec in METRICS}
