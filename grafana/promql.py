"""Raw PromQL for what prometheus/rules/opta-lmx.rules.yml records, so the dashboards work
on a plain import into a Prometheus without those rules (the rules stay an optimisation
for alerts and for Prometheus' own load). Each helper writes the rule's expression with
the dashboard's selector pushed into every series it reads."""

from __future__ import annotations

from collections.abc import Sequence

from grafana.panels import SEL

WINDOW = "5m"  # the rules' window; the panels say "over 5 minutes"
BY = "job, instance"


def rate5m(metric: str, sel: str = SEL, by: str = BY) -> str:
    """`job_instance:<metric>:rate5m` (or `job_instance_model:` with `model` in `by`)."""
    return f"sum by ({by}) (rate({metric}{{{sel}}}[{WINDOW}]))"


def ratio_rate5m(errors: str, total: str, sel: str = SEL, by: str = BY) -> str:
    """Errors over requests; empty, not NaN, while nothing is served."""
    return f"{rate5m(errors, sel, by)} / ({rate5m(total, sel, by)} > 0)"


def quantile_rate5m(q: float, histogram: str, sel: str = SEL, by: str = BY) -> str:
    return f"histogram_quantile({q}, {rate5m(histogram + '_bucket', sel, by + ', le')})"


def code(metric: str, label: str, states: Sequence[str], sel: str = SEL) -> str:
    """One number per series for a state set (1 for the first state, 2 for the next, …),
    as the rules' `:code` series; the dashboards map the numbers back to names."""
    terms = [
        f'({metric}{{{sel}, {label}="{state}"}} == 1)' + (f" * {n}" if n > 1 else "")
        for n, state in enumerate(states, start=1)
    ]
    return f"max without ({label}) ({' or '.join(terms)})"


def memory_used_ratio(sel: str = SEL) -> str:
    return f"opta_lmx_memory_used_bytes{{{sel}}} / opta_lmx_memory_total_bytes{{{sel}}}"


HEALTH_STATUS = code("opta_lmx_health_status", "status", ("ok", "degraded"))
HEALTH_VERDICT = code("opta_lmx_health_verdict", "verdict", ("healthy", "degraded", "critical"))
CONNECTION_STATE = code(
    "opta_exporter_connection_state",
    "state",
    ("connecting", "open", "backoff", "auth_failed", "stopped"),
)
READINESS_STATES = ("admitted", "loading", "canary_pending", "routable", "quarantined")
