"""Raw PromQL for what prometheus/rules/opta-lmx.rules.yml records, so the dashboards work
on a plain import into a Prometheus without those rules (the rules stay an optimisation
for alerts and for Prometheus' own load). Each helper writes the rule's expression with
the dashboard's selector pushed into every series it reads; `RECORDED` holds each rule's
expression as written here with no selector, and a test compares it with the rules file."""

from __future__ import annotations

from collections.abc import Sequence

from grafana.panels import SEL

WINDOW = "5m"  # the rules' window; the panels say "over 5 minutes"
BY = "job, instance"
BY_MODEL = BY + ", model"
LATENCY = "lmx_request_duration_seconds"
QUANTILES = (0.5, 0.95, 0.99)


def series(metric: str, sel: str, *matchers: str) -> str:
    """`metric{sel, matchers…}`, or the bare name when there is nothing to match."""
    inside = ", ".join(m for m in (sel, *matchers) if m)
    return f"{metric}{{{inside}}}" if inside else metric


def rate5m(metric: str, sel: str = SEL, by: str = BY) -> str:
    """`job_instance:<metric>:rate5m` (or `job_instance_model:` with `model` in `by`)."""
    return f"sum by ({by}) (rate({series(metric, sel)}[{WINDOW}]))"


def ratio_rate5m(errors: str, total: str, sel: str = SEL, by: str = BY) -> str:
    """Errors over requests; empty, not NaN, while nothing is served."""
    return f"{rate5m(errors, sel, by)} / ({rate5m(total, sel, by)} > 0)"


def quantile_rate5m(q: float, histogram: str, sel: str = SEL, by: str = BY) -> str:
    return f"histogram_quantile({q}, {rate5m(histogram + '_bucket', sel, by + ', le')})"


def code(metric: str, label: str, states: Sequence[str], sel: str = SEL) -> str:
    """One number per series for a state set (1 for the first state, 2 for the next, …),
    as the rules' `:code` series; the dashboards map the numbers back to names."""
    terms = []
    for n, state in enumerate(states, start=1):
        matcher = f'{label}="{state}"'
        terms.append(f"({series(metric, sel, matcher)} == 1)" + (f" * {n}" if n > 1 else ""))
    return f"max without ({label}) ({' or '.join(terms)})"


def memory_used_ratio(sel: str = SEL) -> str:
    used, total = "opta_lmx_memory_used_bytes", "opta_lmx_memory_total_bytes"
    return f"{series(used, sel)} / {series(total, sel)}"


HEALTH = ("opta_lmx_health_status", "status", ("ok", "degraded"))
VERDICT = ("opta_lmx_health_verdict", "verdict", ("healthy", "degraded", "critical"))
CONNECTION = (
    "opta_exporter_connection_state",
    "state",
    ("connecting", "open", "backoff", "auth_failed", "stopped"),
)
READINESS = (
    "opta_lmx_model_readiness",
    "state",
    ("admitted", "loading", "canary_pending", "routable", "quarantined"),
)
HEALTH_STATUS = code(*HEALTH)
HEALTH_VERDICT = code(*VERDICT)
CONNECTION_STATE = code(*CONNECTION)
READINESS_STATES = READINESS[2]

# (record, quantile label or "") -> the raw expression the dashboards run for it.
RECORDED: dict[tuple[str, str], str] = {
    **{
        (f"job_instance:{name}:rate5m", ""): rate5m(f"{name}_total", "")
        for name in (
            "lmx_requests",
            "lmx_errors",
            "lmx_stream_requests",
            "lmx_prompt_tokens",
            "lmx_completion_tokens",
        )
    },
    **{
        (f"job_instance_model:{name}:rate5m", ""): rate5m(f"{name}_total", "", BY_MODEL)
        for name in ("lmx_model_requests", "lmx_model_errors", "lmx_model_tokens")
    },
    ("job_instance:lmx_errors:ratio_rate5m", ""): ratio_rate5m(
        "lmx_errors_total", "lmx_requests_total", ""
    ),
    ("job_instance_model:lmx_model_errors:ratio_rate5m", ""): ratio_rate5m(
        "lmx_model_errors_total", "lmx_model_requests_total", "", BY_MODEL
    ),
    (f"job_instance_model:{LATENCY}_bucket:rate5m", ""): rate5m(
        f"{LATENCY}_bucket", "", BY_MODEL + ", le"
    ),
    **{
        (f"job_instance_model:{LATENCY}:quantile_rate5m", str(q)): quantile_rate5m(
            q, LATENCY, "", BY_MODEL
        )
        for q in QUANTILES
    },
    **{
        (f"job_instance:{LATENCY}:quantile_rate5m", str(q)): quantile_rate5m(q, LATENCY, "")
        for q in QUANTILES
    },
    ("job_instance:opta_lmx_memory_used:ratio", ""): memory_used_ratio(""),
    ("job_instance_model:opta_lmx_model_readiness:code", ""): code(*READINESS, sel=""),
    ("job_instance:opta_lmx_health_status:code", ""): code(*HEALTH, sel=""),
    ("job_instance:opta_lmx_health_verdict:code", ""): code(*VERDICT, sel=""),
    ("job_instance:opta_exporter_connection_state:code", ""): code(*CONNECTION, sel=""),
}
