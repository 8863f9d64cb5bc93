"""The "Opta LMX overview" dashboard: what LMX is doing.

Request figures read LMX's own families that the exporter relays (`lmx_*`): a running LMX
sends no per-request event. Rates, quantiles and state codes are raw PromQL (grafana/promql.py,
the expressions of prometheus/rules/opta-lmx.rules.yml), so a plain import works without the
rules. Every legend names the instance: one dashboard shows a fleet of LMX.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from grafana.panels import (
    CONNECTION_STATES,
    CRASH_LOOP,
    HEALTH_STATUSES,
    MSEL,
    RATE,
    READINESS,
    RELAYED,
    SEL,
    SHEDDING,
    TOKENS_PER_SECOND,
    UP_DOWN,
    VERDICTS,
    Annotation,
    FleetColumn,
    Q,
    bar_gauge_panel,
    base_dashboard,
    fleet_table_panel,
    stat_panel,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
)
from grafana.promql import (
    BY,
    BY_MODEL,
    CONNECTION_STATE,
    HEALTH_STATUS,
    HEALTH_VERDICT,
    LATENCY,
    READINESS_STATES,
    code,
    memory_used_ratio,
    quantile_rate5m,
    rate5m,
    ratio_rate5m,
)

# The throughput window statistics plotted: what a reader compares at a glance.
WINDOW_STATS = "latest|mean|p95|max"
QUANTILES = ((0.5, "50"), (0.95, "95"), (0.99, "99"))
INST = " {{instance}}"
# The fleet table: one instant query per column, each reduced to (job, instance) so the
# table's merge puts one LMX on one row.
FLEET = (
    FleetColumn("Up", f"max by ({BY}) (up{{{SEL}}})", UP_DOWN),
    FleetColumn("Health", f"max by ({BY}) ({HEALTH_STATUS})", HEALTH_STATUSES),
    FleetColumn("Shedding", f"max by ({BY}) (opta_lmx_load_shedding{{{SEL}}})", SHEDDING),
    FleetColumn(
        "Loaded models",
        f"count by ({BY}) (opta_lmx_model_loaded{{{SEL}}}) or 0 * max by ({BY}) (up{{{SEL}}})",
    ),
    FleetColumn("Memory used", f"max by ({BY}) ({memory_used_ratio()})", unit="percentunit"),
    FleetColumn("Requests/s", rate5m("lmx_requests_total"), unit="reqps"),
)


def overview() -> Dashboard:
    d = base_dashboard(
        "opta-lmx-overview",
        "Opta LMX overview",
        "Opta LMX: stream, health, memory, requests, throughput, models, downloads"
        " (opta-exporter).",
        with_model=True,
    )
    for annotation in (
        Annotation(
            "Model loaded",
            f"opta_lmx_model_loaded{{{SEL}}}"
            f" unless opta_lmx_model_loaded{{{SEL}}} offset $__interval",
            color="green",
            title="Loaded {{model}} ({{format}}) on {{instance}}",
            tags="model",
        ),
        Annotation(
            "Model unloaded",
            f"increase(opta_lmx_model_unloads_total{{{SEL}}}[{RATE}]) > 0",
            color="orange",
            title="Model unloaded on {{instance}}: {{reason}}",
            tags="reason",
        ),
        Annotation(
            "Canary failed",
            f'increase(opta_lmx_model_canaries_total{{{SEL}, outcome="failed"}}[{RATE}]) > 0',
            color="red",
            title="Model canary failed on {{instance}}",
        ),
        Annotation(
            "Config reloaded",
            f"increase(opta_lmx_config_reloads_total{{{SEL}}}[{RATE}]) > 0",
            color="blue",
            title="LMX config reloaded on {{instance}}",
        ),
    ):
        d.annotation(annotation)

    d.with_row(Row("Fleet"))
    d.with_panel(
        fleet_table_panel(
            "LMX fleet",
            FLEET,
            description="One row per LMX (instance): Prometheus reaches its exporter, the"
            " status of /admin/health, load shedding, loaded models, the share of memory in"
            " use (/admin/memory) and requests per second over 5 minutes.",
        )
    )

    d.with_row(Row("LMX"))
    d.with_panel(
        stat_panel(
            "Event stream",
            "none",
            Q(f"opta_lmx_up{{{SEL}}}", "{{instance}}"),
            description="1 while the exporter holds an open, fresh LMX event stream.",
            mappings=UP_DOWN,
        )
    )
    d.with_panel(
        stat_panel(
            "Exporter connection",
            "none",
            Q(CONNECTION_STATE, "{{instance}}"),
            description="The exporter's stream consumer state.",
            mappings=CONNECTION_STATES,
        )
    )
    d.with_panel(
        stat_panel(
            "LMX version",
            "none",
            Q(f"opta_lmx_info{{{SEL}}}", "{{version}} {{instance}}"),
            description="LMX version from the last snapshot.",
            text_mode=common.BigValueTextMode.NAME,
            span=8,
        )
    )
    d.with_panel(
        stat_panel(
            "LMX uptime",
            "s",
            Q(f"time() - opta_lmx_start_time_seconds{{{SEL}}}", "{{instance}}"),
            description="Since LMX started (its uptime at the last snapshot).",
            span=4,
        )
    )
    d.with_panel(
        stat_panel(
            "Loaded models",
            "none",
            Q(f"count by (job, instance) (opta_lmx_model_loaded{{{SEL}}})", "{{instance}}"),
            description="Models LMX holds in memory.",
            span=4,
        )
    )

    _overview_health(d)

    d.with_row(Row("Memory"))
    d.with_panel(
        timeseries_panel(
            "Unified memory",
            "bytes",
            Q(f"opta_lmx_memory_used_bytes{{{SEL}}}", "used {{instance}}"),
            Q(f"opta_lmx_memory_available_bytes{{{SEL}}}", "available {{instance}}"),
            Q(f"opta_lmx_memory_total_bytes{{{SEL}}}", "total {{instance}}"),
            Q(
                f"opta_lmx_memory_threshold_ratio{{{SEL}}} * opta_lmx_memory_total_bytes{{{SEL}}}",
                "admission threshold {{instance}}",
            ),
            description="Memory in use and available; above the threshold LMX refuses loads.",
            span=8,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Memory used vs threshold",
            "percentunit",
            Q(f"opta_lmx_memory_usage_ratio{{{SEL}}}", "used (/admin/health) {{instance}}"),
            Q(memory_used_ratio(), "used (/admin/memory) {{instance}}"),
            Q(f"opta_lmx_memory_threshold_ratio{{{SEL}}}", "threshold {{instance}}"),
            description="Share of unified memory in use against LMX's admission threshold."
            " /admin/health is read more often and is the one read LMX answers while it"
            " sheds load (from 95 % by default): its line goes on when the others stop.",
            span=8,
        ).max(1)
    )
    d.with_panel(
        timeseries_panel(
            "Metal memory",
            "bytes",
            Q(f"opta_lmx_metal_memory_bytes{{{SEL}}}", "{{kind}} {{instance}}"),
            description="Metal's active, peak and cache memory from /admin/health; empty"
            " where LMX reports no Metal (not on Apple silicon).",
            span=8,
        )
    )
    d.with_panel(
        bar_gauge_panel(
            "Memory per model",
            "bytes",
            Q(f"opta_lmx_model_memory_bytes{{{MSEL}}}", "{{model}} {{instance}}"),
            description="Memory each loaded model holds.",
            span=24,
            ratio=False,
        )
    )
    return _overview_rest(d)


def _overview_health(d: Dashboard) -> None:
    """LMX's own word on its health: /admin/health (read also while LMX sheds load) and
    /admin/diagnostics."""
    d.with_row(Row("Health"))
    d.with_panel(
        stat_panel(
            "LMX health",
            "none",
            Q(HEALTH_STATUS, "{{instance}}"),
            description="The status of /admin/health: degraded only when memory use is above 95 %.",
            mappings=HEALTH_STATUSES,
        )
    )
    d.with_panel(
        stat_panel(
            "Diagnostics verdict",
            "none",
            Q(HEALTH_VERDICT, "{{instance}}"),
            description="LMX's verdict in /admin/diagnostics: degraded from its admission"
            " threshold (90 % memory by default) on.",
            mappings=VERDICTS,
        )
    )
    d.with_panel(
        stat_panel(
            "Load shedding",
            "none",
            Q(f"opta_lmx_load_shedding{{{SEL}}}", "{{instance}}"),
            description="Red while LMX answers 503 'overloaded': memory reached its shedding"
            " line (95 % by default) and it refuses every request but /healthz, /readyz and"
            " /admin/health, inference included. Memory figures other than /admin/health's"
            " are absent meanwhile.",
            mappings=SHEDDING,
        )
    )
    d.with_panel(
        stat_panel(
            "Crash loop",
            "none",
            Q(f"opta_lmx_crash_loop{{{SEL}}}", "{{instance}}"),
            description="Red while LMX's diagnostics detect a crash loop.",
            mappings=CRASH_LOOP,
        )
    )
    d.with_panel(
        stat_panel(
            "Quarantined models",
            "none",
            Q(f"opta_lmx_models_quarantined{{{SEL}}}", "{{instance}}"),
            description="Models LMX's readiness tracker holds quarantined (/admin/diagnostics);"
            " it may count models no longer loaded. The Models row names the loaded ones.",
            steps=((None, "green"), (1, "red")),
        )
    )
    d.with_panel(
        stat_panel(
            "Agent runs in progress",
            "none",
            Q(f"opta_lmx_agent_runs_active{{{SEL}}}", "{{instance}}"),
            description="Agent runs LMX is executing (/admin/diagnostics).",
        )
    )
    d.with_panel(
        state_timeline_panel(
            "Health over time",
            Q(HEALTH_STATUS, "health {{instance}}"),
            Q(HEALTH_VERDICT, "verdict {{instance}}"),
            Q(f"opta_lmx_load_shedding{{{SEL}}}", "load shedding {{instance}}"),
            Q(f"opta_lmx_crash_loop{{{SEL}}}", "crash loop {{instance}}"),
            mappings=HEALTH_STATUSES,
            query_mappings={"B": VERDICTS, "C": SHEDDING, "D": CRASH_LOOP},
            description="/admin/health's status, the diagnostics verdict, load-shedding spells"
            " and crash loops over time; a gap means the source was not read.",
            span=12,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Agent runs",
            "short",
            Q(f"opta_lmx_agent_runs_active{{{SEL}}}", "in progress {{instance}}"),
            Q(
                "sum by (job, instance, outcome) "
                f"(increase(opta_lmx_agent_runs_finished_total{{{SEL}}}[{RATE}]))",
                "{{outcome}} {{instance}}",
            ),
            description="Agent runs in progress, and those that completed or failed"
            " (per interval), from /admin/diagnostics.",
            span=12,
        )
    )


def _overview_rest(d: Dashboard) -> Dashboard:
    d.with_row(Row("Requests"))
    d.with_panel(
        timeseries_panel(
            "Requests in flight vs limit",
            "short",
            Q(f"opta_lmx_requests_in_flight{{{SEL}}}", "in flight {{instance}}"),
            Q(f"opta_lmx_requests_max_concurrent{{{SEL}}}", "limit {{instance}}"),
            Q(f"lmx_queued_requests{{{SEL}}}", "queued {{instance}}"),
            description="Requests being served against LMX's concurrency limit; queued ones wait.",
            span=8,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Request rate",
            "reqps",
            Q(rate5m("lmx_requests_total"), "all {{instance}}"),
            Q(rate5m("lmx_stream_requests_total"), "streamed {{instance}}"),
            Q(rate5m("lmx_errors_total"), "errors {{instance}}"),
            description="Requests per second over 5 minutes." + RELAYED,
            span=8,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Error ratio",
            "percentunit",
            Q(ratio_rate5m("lmx_errors_total", "lmx_requests_total"), "all {{instance}}"),
            Q(
                ratio_rate5m("lmx_model_errors_total", "lmx_model_requests_total", MSEL, BY_MODEL),
                "{{model}} {{instance}}",
            ),
            description="Failed share of requests over 5 minutes, in total and per model."
            + RELAYED,
            span=8,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Requests by model",
            "reqps",
            Q(rate5m("lmx_model_requests_total", MSEL, BY_MODEL), "{{model}} {{instance}}"),
            Q(rate5m("lmx_model_errors_total", MSEL, BY_MODEL), "errors {{model}} {{instance}}"),
            description="Requests per second per model over 5 minutes." + RELAYED,
            span=12,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Request latency",
            "s",
            *(Q(quantile_rate5m(q, LATENCY), f"p{p} all" + INST) for q, p in QUANTILES),
            *(
                Q(quantile_rate5m(q, LATENCY, MSEL, BY_MODEL), f"p{p} {{{{model}}}}" + INST)
                for q, p in QUANTILES
            ),
            description="p50/p95/p99 of request duration from LMX's histogram, over 5 minutes."
            + RELAYED,
            span=12,
        )
    )

    d.with_row(Row("Throughput"))
    d.with_panel(
        timeseries_panel(
            "Tokens per second",
            TOKENS_PER_SECOND,
            Q(rate5m("lmx_completion_tokens_total"), "completion {{instance}}"),
            Q(rate5m("lmx_prompt_tokens_total"), "prompt {{instance}}"),
            description="Completion and prompt tokens per second over 5 minutes, from LMX's"
            " token counters." + RELAYED,
            span=12,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Throughput window",
            TOKENS_PER_SECOND,
            Q(
                f'opta_lmx_throughput_window_tokens_per_second{{{SEL}, stat=~"{WINDOW_STATS}"}}',
                "{{stat}} {{instance}}",
            ),
            description="Completion tokens/s between two consecutive relay reads of LMX's"
            " counter (every --lmx.relay-interval, 15 s by default), over the exporter's"
            " window (--window.duration, 5 minutes by default): the latest sample, the mean,"
            " p95 and max of the window. Its max keeps a burst that a 5-minute rate flattens."
            " No sample spans an LMX restart; empty while the relay is stale.",
            span=12,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Completion tokens by model",
            TOKENS_PER_SECOND,
            Q(rate5m("lmx_model_tokens_total", MSEL, BY_MODEL), "{{model}} {{instance}}"),
            description="Completion tokens per second per model over 5 minutes." + RELAYED,
            span=18,
        )
    )
    d.with_panel(
        stat_panel(
            "Peak tokens/s",
            TOKENS_PER_SECOND,
            Q(
                "max by (job, instance) (max_over_time("
                f'opta_lmx_throughput_window_tokens_per_second{{{SEL}, stat="max"}}[$__range]))',
                "{{instance}}",
            ),
            description="The highest tokens/s sample between two relay reads in the time"
            " range (the window's max, which holds each sample for its duration).",
            span=6,
            height=8,
        )
    )
    return _overview_models(d)


def _overview_models(d: Dashboard) -> Dashboard:
    d.with_row(Row("Models"))
    merge = dm.DataTransformerConfig(id_val="merge", options={})
    organize = dm.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {
                "Time": True,
                "__name__": True,
                "Value #A": True,
                "Value #C": True,
                "job": True,
            },
            "indexByName": {"model": 0, "instance": 1, "format": 2, "state": 3},
            "renameByName": {
                "model": "Model",
                "instance": "Instance",
                "format": "Format",
                "state": "Readiness",
                "Value #B": "Memory",
                "Value #D": "Crashes",
            },
        },
    )
    d.with_panel(
        table_panel(
            "Loaded models",
            "none",
            Q(f"opta_lmx_model_loaded{{{MSEL}}}"),
            Q(f"opta_lmx_model_memory_bytes{{{MSEL}}}"),
            Q(f"opta_lmx_model_readiness{{{MSEL}}} == 1"),
            Q(f"opta_lmx_model_crashes{{{MSEL}}}"),
            description="Every loaded model with its format, memory, readiness and crash count.",
            transformations=[merge, organize],
            overrides={"Memory": [dm.DynamicConfigValue(id_val="unit", value="bytes")]},
        )
    )
    d.with_panel(
        state_timeline_panel(
            "Model timeline",
            Q(
                code("opta_lmx_model_readiness", "state", READINESS_STATES, MSEL),
                "{{model}} {{instance}}",
            ),
            mappings=READINESS,
            description="Readiness of each model over time; a gap means not loaded. The"
            " dashboard's annotations mark loads, unloads and canary failures.",
        )
    )
    d.with_panel(
        timeseries_panel(
            "Model events",
            "short",
            Q(
                f"sum by (job, instance) (increase(opta_lmx_model_loads_total{{{MSEL}}}[{RATE}]))",
                "loads {{instance}}",
            ),
            Q(
                "sum by (job, instance, reason) "
                f"(increase(opta_lmx_model_unloads_total{{{SEL}}}[{RATE}]))",
                "unload {{reason}} {{instance}}",
            ),
            Q(
                "sum by (job, instance, outcome) "
                f"(increase(opta_lmx_model_canaries_total{{{SEL}}}[{RATE}]))",
                "canary {{outcome}} {{instance}}",
            ),
            Q(
                "sum by (job, instance, backend, outcome) "
                f"(increase(opta_lmx_model_compatibility_checks_total{{{SEL}}}[{RATE}]))",
                "compatibility {{backend}} {{outcome}} {{instance}}",
            ),
            description="Loads, unloads by reason, canary runs and compatibility checks.",
            bars=True,
        )
    )
    d.with_panel(
        stat_panel(
            "Load, canary and download time (p95)",
            "s",
            Q(
                "histogram_quantile(0.95, sum by (job, instance, format, le) (increase("
                f"opta_lmx_model_load_duration_seconds_bucket{{{SEL}}}[$__range])))",
                "load {{format}} {{instance}}",
            ),
            Q(
                "histogram_quantile(0.95, sum by (job, instance, outcome, le) (increase("
                f"opta_lmx_model_canary_duration_seconds_bucket{{{SEL}}}[$__range])))",
                "canary {{outcome}} {{instance}}",
            ),
            Q(
                "histogram_quantile(0.95, sum by (job, instance, le) (increase("
                f"opta_lmx_download_duration_seconds_bucket{{{SEL}}}[$__range])))",
                "download {{instance}}",
            ),
            description="95th percentile over the time range; empty where nothing happened.",
            text_mode=common.BigValueTextMode.VALUE_AND_NAME,
            span=12,
            height=8,
        )
    )

    d.with_row(Row("Downloads and quantization"))
    d.with_panel(
        bar_gauge_panel(
            "Downloads in progress",
            "percentunit",
            Q(f"opta_lmx_download_progress_ratio{{{SEL}}}", "{{repo}} {{instance}}"),
            description="Running downloads, as /admin/models/downloads lists them.",
            span=8,
        )
    )
    d.with_panel(
        bar_gauge_panel(
            "Quantize jobs by status",
            "none",
            Q(f"opta_lmx_quantize_jobs_listed{{{SEL}}}", "{{status}} {{instance}}"),
            description="Jobs /admin/quantize lists, finished ones included, by status; LMX"
            " reports no progress figure for them.",
            span=8,
            ratio=False,
        )
    )
    d.with_panel(
        timeseries_panel(
            "Finished downloads and quantize jobs",
            "short",
            Q(
                "sum by (job, instance, outcome) "
                f"(increase(opta_lmx_downloads_total{{{SEL}}}[{RATE}]))",
                "download {{outcome}} {{instance}}",
            ),
            Q(
                "sum by (job, instance, outcome) "
                f"(increase(opta_lmx_quantize_jobs_total{{{SEL}}}[{RATE}]))",
                "quantize {{outcome}} {{instance}}",
            ),
            description="Downloads and quantize jobs that ended, by outcome.",
            span=8,
            bars=True,
        )
    )
    return d
