"""The "Opta exporter health" dashboard: the exporter's own view of its LMX stream."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from grafana.panels import (
    CONNECTION_STATES,
    RATE,
    SEL,
    UP_DOWN,
    Annotation,
    Q,
    base_dashboard,
    stat_panel,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
)
from grafana.promql import CONNECTION_STATE


def exporter_health() -> Dashboard:
    d = base_dashboard(
        "opta-exporter-health",
        "Opta exporter health",
        "opta-exporter itself: its LMX stream, reconnects, bad input, snapshots, drift,"
        " the sources it reads.",
        with_model=False,
    )
    d.annotation(
        Annotation(
            "Reconnect",
            f"increase(opta_exporter_reconnects_total{{{SEL}}}[{RATE}]) > 0",
            color="orange",
            title="Stream reconnect on {{instance}}: {{reason}}",
            tags="reason",
        )
    )
    d.with_row(Row("Connection"))
    d.with_panel(
        stat_panel(
            "Scrape",
            "none",
            Q(f"up{{{SEL}}}", "{{instance}}"),
            description="Whether Prometheus reaches the exporter.",
            mappings=UP_DOWN,
            span=4,
        )
    )
    d.with_panel(
        stat_panel(
            "Event stream",
            "none",
            Q(f"opta_lmx_up{{{SEL}}}", "{{instance}}"),
            description="1 while the LMX event stream is open and fresh.",
            mappings=UP_DOWN,
        )
    )
    d.with_panel(
        stat_panel(
            "Connection state",
            "none",
            Q(CONNECTION_STATE, "{{instance}}"),
            description="connecting, open, backoff, auth_failed (LMX refuses the key), stopped.",
            mappings=CONNECTION_STATES,
        )
    )
    d.with_panel(
        stat_panel(
            "Last event age",
            "s",
            Q(f"time() - opta_exporter_last_event_timestamp_seconds{{{SEL}}}", "{{instance}}"),
            description="Since the last event or heartbeat; LMX sends a heartbeat every 30 s"
            " when idle, so more than 45 s means the stream is stale.",
            steps=((None, "green"), (45, "orange"), (90, "red")),
        )
    )
    d.with_panel(
        stat_panel(
            "Backoff",
            "s",
            Q(f"opta_exporter_backoff_seconds{{{SEL}}}", "{{instance}}"),
            description="The wait before the next connection attempt; 0 when connected.",
            steps=((None, "green"), (1, "orange")),
        )
    )
    d.with_panel(
        stat_panel(
            "Exporter version",
            "none",
            Q(
                f"opta_exporter_build_info{{{SEL}}}",
                "{{version}} (Python {{python_version}}) {{instance}}",
            ),
            description="The exporter's version and Python.",
            text_mode=common.BigValueTextMode.NAME,
        )
    )
    d.with_panel(
        state_timeline_panel(
            "Connection state over time",
            Q(CONNECTION_STATE, "{{instance}}"),
            mappings=CONNECTION_STATES,
            description="The stream consumer's state; backoff stretches are reconnects.",
            height=5,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Reconnects by reason",
            "short",
            Q(
                "sum by (job, instance, reason) "
                f"(increase(opta_exporter_reconnects_total{{{SEL}}}[{RATE}]))",
                "{{reason}} {{instance}}",
            ),
            description="Why the stream ended: eof, timeout, stale, http_error, auth,"
            " connect_error, protocol, dropped (LMX stopped delivering to this subscriber).",
            bars=True,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Backoff and last event age",
            "s",
            Q(f"opta_exporter_backoff_seconds{{{SEL}}}", "backoff {{instance}}"),
            Q(
                f"time() - opta_exporter_last_event_timestamp_seconds{{{SEL}}}",
                "last event age {{instance}}",
            ),
            description="Reconnect wait and time since the last event or heartbeat.",
        )
    )

    d.with_row(Row("Events"))
    d.with_panel(
        timeseries_panel(
            "Events received",
            "cps",
            Q(
                f"sum by (job, instance, event) (rate(opta_lmx_events_total{{{SEL}}}[{RATE}]))",
                "{{event}} {{instance}}",
            ),
            description="LMX events per second by type, heartbeats included.",
        )
    )
    d.with_panel(
        timeseries_panel(
            "Event errors by reason",
            "short",
            Q(
                "sum by (job, instance, reason) "
                f"(increase(opta_exporter_event_errors_total{{{SEL}}}[{RATE}]))",
                "{{reason}} {{instance}}",
            ),
            description="Events refused as bad input: malformed_json, not_an_object,"
            " bad_field, oversize, bad_id.",
            bars=True,
        )
    )

    d.with_row(Row("Snapshots, drift and cardinality"))
    d.with_panel(
        timeseries_panel(
            "Resyncs by outcome",
            "short",
            Q(
                "sum by (job, instance, outcome) "
                f"(increase(opta_exporter_resyncs_total{{{SEL}}}[{RATE}]))",
                "{{outcome}} {{instance}}",
            ),
            description="Snapshot reads of /admin/status and /admin/memory.",
            span=8,
            bars=True,
        )
    )
    d.with_panel(
        timeseries_panel(
            "State drift",
            "short",
            Q(
                "sum by (job, instance) "
                f"(increase(opta_exporter_state_drift_total{{{SEL}}}[{RATE}]))",
                "drift {{instance}}",
            ),
            Q(
                "sum by (job, instance) "
                f'(increase(opta_exporter_reconnects_total{{{SEL}, reason="dropped"}}[{RATE}]))',
                "resubscribed {{instance}}",
            ),
            description="Models a snapshot had to correct: the trace of lost events, and the"
            " resubscriptions it caused.",
            span=8,
            bars=True,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Series dropped by the cardinality cap",
            "short",
            Q(
                "sum by (job, instance, metric) "
                f"(increase(opta_exporter_series_dropped_total{{{SEL}}}[{RATE}]))",
                "{{metric}} {{instance}}",
            ),
            description="Label sets refused (more than --max-models models, or an id over 256"
            " characters), per metric.",
            span=8,
            bars=True,
        )
    )
    d.with_panel(
        stat_panel(
            "Series dropped (total)",
            "none",
            Q(
                f"sum by (job, instance) (opta_exporter_series_dropped_total{{{SEL}}})"
                f" or sum by (job, instance) (opta_exporter_build_info{{{SEL}}}) * 0",
                "{{instance}}",
            ),
            description="Since the exporter started; 0 when nothing was refused.",
            steps=((None, "green"), (1, "orange")),
            span=8,
        )
    )
    d.with_panel(
        stat_panel(
            "State drift (total)",
            "none",
            Q(f"opta_exporter_state_drift_total{{{SEL}}}", "{{instance}}"),
            description="Since the exporter started.",
            steps=((None, "green"), (1, "orange")),
            span=8,
        )
    )
    d.with_panel(
        stat_panel(
            "Throughput window samples",
            "none",
            Q(f"opta_lmx_throughput_window_samples{{{SEL}}}", "{{instance}}"),
            description="Tokens/s samples now in the exporter's throughput window: one per"
            " relay read after the first, kept for --window.duration (5 minutes by default)."
            " 0 while the relay is stale.",
            span=8,
        )
    )
    return _relay(_sources(d))


def _sources(d: Dashboard) -> Dashboard:
    """Every interval read of LMX: a figure whose source failed for two of its intervals
    is no longer exported, so an empty panel elsewhere is explained here."""
    d.with_row(Row("Sources"))
    merge = dm.DataTransformerConfig(id_val="merge", options={})
    organize = dm.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {"Time": True, "__name__": True, "job": True},
            "indexByName": {"source": 0, "instance": 1, "Value #A": 2, "Value #B": 3},
            "renameByName": {
                "source": "Source",
                "instance": "Instance",
                "Value #A": "Last read",
                "Value #B": "Last good read (age)",
            },
        },
    )
    d.with_panel(
        table_panel(
            "Source reads",
            "none",
            Q(f"opta_exporter_source_up{{{SEL}}}"),
            Q(f"time() - opta_exporter_source_last_success_timestamp_seconds{{{SEL}}}"),
            description="Each read of LMX the exporter makes on an interval, by source:"
            " whether the last one succeeded, and how long ago the last good one was. A"
            " source's figures are no longer exported once it failed for two of its"
            " intervals; the age is empty for a source never read successfully.",
            transformations=[merge, organize],
            overrides={
                "Last read": [
                    dm.DynamicConfigValue(id_val="mappings", value=UP_DOWN),
                    dm.DynamicConfigValue(
                        id_val="custom.cellOptions", value={"type": "color-text"}
                    ),
                ],
                "Last good read (age)": [dm.DynamicConfigValue(id_val="unit", value="s")],
            },
            span=10,
        )
    )
    d.with_panel(
        state_timeline_panel(
            "Sources over time",
            Q(f"opta_exporter_source_up{{{SEL}}}", "{{source}} {{instance}}"),
            mappings=UP_DOWN,
            description="Whether each source's last read succeeded (up) or failed (down).",
            span=14,
        )
    )
    return d


def _relay(d: Dashboard) -> Dashboard:
    d.with_row(Row("Relay of LMX's /admin/metrics"))
    d.with_panel(
        stat_panel(
            "Last good relay read",
            "s",
            Q(
                f"time() - opta_exporter_relay_last_success_timestamp_seconds{{{SEL}}}",
                "{{instance}}",
            ),
            description="Since the last good read of LMX's /admin/metrics; the request"
            " panels go empty when it is older than 3 relay intervals.",
            steps=((None, "green"), (60, "orange"), (300, "red")),
            span=6,
            height=8,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Relay reads by outcome",
            "short",
            Q(
                "sum by (job, instance, outcome) "
                f"(increase(opta_exporter_relay_reads_total{{{SEL}}}[{RATE}]))",
                "{{outcome}} {{instance}}",
            ),
            description="Reads of LMX's own /admin/metrics (every --lmx.relay-interval).",
            span=9,
            bars=True,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Relayed samples repaired and dropped",
            "short",
            Q(
                "sum by (job, instance) "
                f"(increase(opta_exporter_relay_samples_repaired_total{{{SEL}}}[{RATE}]))",
                "repaired {{instance}}",
            ),
            Q(
                "sum by (job, instance, reason) "
                f"(increase(opta_exporter_relay_samples_dropped_total{{{SEL}}}[{RATE}]))",
                "dropped {{reason}} {{instance}}",
            ),
            description="Samples whose label values LMX left unescaped (repaired), and those"
            " that could not be relayed (unparseable, over the model cap).",
            span=9,
            bars=True,
        )
    )
    return d
