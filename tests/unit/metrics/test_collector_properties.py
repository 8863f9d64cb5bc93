"""Properties of the whole pipeline, parser -> store -> collector: any bytes, cut anywhere, and
any sequence of events, snapshots and relay token reads leave a sound exposition.

- no exception escapes the parser, `ingest`, a snapshot reconciliation or a token read;
- the exposition always parses, counters (histogram buckets, counts, sums included)
  never go down, no model-labelled family has more models than the cap, and the throughput
  window shows only finite, non-negative rates.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.ingest import NAMED
from opta_exporter.core.state import LmxState, Snapshot
from opta_exporter.core.throughput import TokenCount
from opta_exporter.metrics.collector import LmxCollector
from opta_exporter.store import Store
from opta_exporter.stream.sse import SseParser
from tests.fakes import FakeClock
from tests.helpers import COUNTER_SUFFIXES, Samples, parse
from tests.unit.stream.sse_bytes import SETTINGS, streams

CAP = 3


def exposition(registry: CollectorRegistry) -> Samples:
    """The classic text as Prometheus reads it; it must always parse."""
    return parse(generate_latest(registry).decode("utf-8"))


def rig(max_models: int = CAP, clock: FakeClock | None = None) -> tuple[Store, CollectorRegistry]:
    store = Store(
        LmxState(max_models=max_models, window_duration=60.0),
        ExporterHealth(),
        clock or FakeClock(),
    )
    registry = CollectorRegistry()
    registry.register(LmxCollector(store))
    return store, registry


@SETTINGS
@given(streams, st.lists(st.integers(min_value=0, max_value=600), max_size=10))
def test_any_bytes_into_parser_and_ingest_never_break_the_exposition(
    stream: bytes, cuts: list[int]
) -> None:
    store, registry = rig()
    parser = SseParser(max_event_bytes=64)
    bounds = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(bounds):
        store.ingest_events(parser.feed(stream[start:end]))
    exposition(registry)


# -- events --------------------------------------------------------------------------------
MODELS = ["m0", "m1", "m2", "m3", "m4", 'q"uote', "back\\slash", "new\nline", "\U0001f980"]
MODELS += ["x" * 300]
FIELDS = [
    "model_id", "format", "memory_gb", "duration_sec", "reason", "state", "crash_count",
    "outcome", "backend", "repo_id", "progress_percent", "status", "percent",
    "memory_threshold", "used_gb", "total_gb", "threshold_percent", "latency_sec",
    "ttft_sec", "prompt_tokens", "completion_tokens", "tokens_per_second", "error",
    "tokensPerSecond", "vram_used_gb", "uptime_seconds", "loaded_models", "id",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e6),
    st.sampled_from(MODELS),
    st.sampled_from(["mlx", "gguf", "lru", "routable", "loading", "pass", "failed: x"]),
    st.text(max_size=12),
)
values = st.one_of(
    scalars,
    st.lists(st.fixed_dictionaries({"id": st.sampled_from(MODELS)}), max_size=4),
    st.lists(scalars, max_size=3),
)
payloads = st.dictionaries(st.sampled_from(FIELDS), values, max_size=8)
NEVER_SENT = ["request_completed", "memory_warning", "download_progress"]
named = st.tuples(st.sampled_from([*NAMED, *NEVER_SENT, "agent_started", "x y"]), payloads)
# the unnamed {type, data} envelopes no LMX ever sent: counted as `message`, nothing more
old_envelopes = st.tuples(
    st.just("message"),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["status", "model_change", "throughput", "odd"]), "data": payloads}
    ),
)
snapshots = st.builds(
    lambda models: Snapshot(version="1", models=dict.fromkeys(models, 1.0)),
    st.lists(st.sampled_from(MODELS), max_size=5),
)
# a relay read of lmx_completion_tokens_total, some seconds after the one before
token_reads = st.builds(
    TokenCount,
    # seconds since the last read: none, or an HTTP round trip and more
    st.just(0.0) | st.floats(min_value=1e-3, max_value=100),
    st.just(0.0),  # the wall clock moves with it
    st.floats(min_value=0, max_value=1e12),
    st.none() | st.floats(min_value=0, max_value=1e6),
)
steps = st.lists(st.one_of(named, old_envelopes, snapshots, token_reads), min_size=1, max_size=30)


def model_counts(samples: Samples) -> dict[str, int]:
    models: dict[str, set[str]] = {}
    for name, labels in samples:
        found = dict(labels)
        if "model" in found:
            models.setdefault(name, set()).add(found["model"])
    return {name: len(ids) for name, ids in models.items()}


@SETTINGS
@given(steps)
def test_any_event_sequence_keeps_the_exposition_sound(sequence: list[Any]) -> None:
    clock = FakeClock()
    store, registry = rig(clock=clock)
    last: Samples = {}
    for step in sequence:
        if isinstance(step, Snapshot):
            store.reconcile(step, store.seq())
        elif isinstance(step, TokenCount):
            clock.advance(step.mono)
            count = TokenCount(clock.mono, clock.wall, step.completion_tokens, step.uptime)
            store.count_tokens(count)
        else:
            name, data = step
            store.ingest(name, json.dumps(data).encode())
        samples = exposition(registry)
        for key, old in last.items():
            if key[0].endswith(COUNTER_SUFFIXES):
                assert samples.get(key, -1.0) >= old, f"{key} went from {old} down"
        for key, value in samples.items():
            if key[0].endswith(("_bucket", "_count", "_sum")):
                assert value >= 0.0, key  # NaN fails this too
        over = {name: n for name, n in model_counts(samples).items() if n > CAP}
        assert not over, f"more models than the cap: {over}"
        rates = [
            v for k, v in samples.items() if k[0] == "opta_lmx_throughput_window_tokens_per_second"
        ]
        assert all(math.isfinite(v) and v >= 0 for v in rates), rates
        last = samples


def test_huge_durations_keep_histogram_sums_finite() -> None:
    store, registry = rig()
    for _ in range(3):
        store.ingest("model_loaded", b'{"model_id": "m", "duration_sec": 1e308}')
    sums = {k: v for k, v in exposition(registry).items() if k[0].endswith("_sum")}
    assert all(math.isfinite(v) for v in sums.values()), sums
