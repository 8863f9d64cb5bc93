"""Fuzz: the snapshot parser (core/snapshot.py) and the polled-read parsers
(core/readings.py) take any JSON object (LMX's field names with values of any type and
size, NaN, integers no float holds) without raising, and the state they feed still
renders an exposition promtool accepts. Bounded examples: seconds, not minutes."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.labels import FORMATS, READINESS_STATES
from opta_exporter.core.readings import (
    parse_diagnostics,
    parse_downloads,
    parse_health,
    parse_models,
    parse_quantize,
)
from opta_exporter.core.snapshot import parse_snapshot
from opta_exporter.core.state import LmxState
from opta_exporter.metrics.collector import tables
from opta_exporter.metrics.exposition import Exposition
from opta_exporter.store import Store
from tests.fakes import FakeClock
from tests.helpers import promtool_check

KEYS = [
    "version",
    "uptime_seconds",
    "memory",
    "models",
    "total_gb",
    "used_gb",
    "available_gb",
    "threshold_percent",
    "in_flight_requests",
    "max_concurrent_requests",
    "total_unified_memory_gb",
    "memory_gb",
    "loaded",
    "status",
    "memory_usage_percent",
    "metal",
    "active_memory_gb",
    "peak_memory_gb",
    "cache_memory_gb",
    "system",
    "crash_loop_detected",
    "quarantined_count",
    "agents",
    "active_runs",
    "completed_runs",
    "failed_runs",
    "health_verdict",
    "id",
    "backend_type",
    "readiness",
    "state",
    "downloads",
    "repo_id",
    "progress_percent",
    "downloaded_bytes",
    "total_bytes",
    "jobs",
    "m",
    "mlx-community/Qwen3-8B-4bit",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)  # no float holds these
    | st.floats()  # NaN and both infinities included
    | st.text(max_size=20)
    | st.sampled_from(["ok", "degraded", "routable", "mlx", "gguf", "downloading", "running"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)
OBJECTS = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def exposition_of(store: Store) -> str:
    view = store.view()
    parts = Exposition().parts(tables(view.state, view.health, view.now, view.wall), False)
    return b"".join(parts).decode()


@FUZZ
@given(status=OBJECTS, memory=OBJECTS)
@example(status={"uptime_seconds": 10**400, "models": ["m"]}, memory={"used_gb": float("nan")})
def test_parse_snapshot_takes_any_object(status: dict[str, Any], memory: dict[str, Any]) -> None:
    snap = parse_snapshot(status, memory)
    store = Store(LmxState(max_models=5), ExporterHealth(), FakeClock())
    store.reconcile(snap, store.seq())
    store.reconcile(parse_snapshot(memory, status), store.seq())  # and as drift
    promtool_check(exposition_of(store))


@FUZZ
@given(bodies=st.lists(OBJECTS, min_size=5, max_size=5))
@example(bodies=[{"memory_usage_percent": 10**400}, {}, {}, {}, {}])
def test_the_polled_parsers_take_any_object(bodies: list[dict[str, Any]]) -> None:
    health, models, diagnostics, downloads, quantize = bodies
    store = Store(LmxState(max_models=5), ExporterHealth(), FakeClock())
    store.set_health(parse_health(health))
    store.reconcile_readiness(parse_models(models, READINESS_STATES), store.seq())
    store.set_diagnostics(parse_diagnostics(diagnostics, FORMATS))
    store.set_downloads(parse_downloads(downloads))
    store.set_quantize(parse_quantize(quantize))
    promtool_check(exposition_of(store))
