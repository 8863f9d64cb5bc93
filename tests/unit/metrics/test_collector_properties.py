"""Properties: any bytes, cut anywhere, and any event sequence leave a sound exporter.

- the SSE parser gives the same events however the stream is cut (empty reads included)
  and never holds much more than one event's limit;
- no exception escapes the parser, `ingest` or a snapshot reconciliation;
- the exposition always parses, counters (histogram buckets, counts, sums included)
  never go down, and no model-labelled family has more models than the cap.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.ingest import NAMED
from opta_exporter.core.state import LmxState, Snapshot
from opta_exporter.metrics.collector import LmxCollector
from opta_exporter.store import Store
from opta_exporter.stream.sse import MAX_EVENT_BYTES, SseParser
from tests.integration.faults.faulty_rig import COUNTER_SUFFIXES, Samples, parse

CAP = 3
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- bytes ---------------------------------------------------------------------------------
LINES = [
    b"event: model_loaded",
    b"event: heartbeat",
    b'data: {"model_id": "m1", "format": "mlx", "duration_sec": 2}',
    b'data: {"timestamp": 1}',
    b'data: {"type": "throughput", "data": {"tokensPerSecond": 5}}',
    b"data",
    b"data:",
    b"data: [1, 2]",
    b"id: 7",
    b"id",
    b"retry: 250",
    b"retry: x",
    b": comment",
    b"\xef\xbb\xbf",
    b"\xff\xfe\x00",
    b"x" * 40,
    b"",
]
EOLS = [b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b"\r\n\r\n"]
pieces = st.lists(
    st.sampled_from(LINES) | st.sampled_from(EOLS) | st.binary(max_size=16), max_size=60
)
streams = pieces.map(b"".join)


def feed_all(chunks: list[bytes], limit: int) -> tuple[Any, ...]:
    parser = SseParser(max_event_bytes=limit)
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
        assert parser.buffered <= limit + 1, "held more than one event's worth"
    return events, parser.last_event_id, parser.retry_ms, parser.oversize


@SETTINGS
@given(pieces, st.integers(min_value=8, max_value=64) | st.just(MAX_EVENT_BYTES))
def test_any_cut_gives_the_same_events(chunks: list[bytes], limit: int) -> None:
    """However TCP splits the stream (empty reads too), the same events come out."""
    stream = b"".join(chunks)
    whole = feed_all([stream], limit)
    assert feed_all(chunks, limit) == whole
    assert feed_all([c for chunk in chunks for c in (chunk, b"")], limit) == whole
    assert feed_all([stream[i : i + 1] for i in range(len(stream))], limit) == whole


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 30), st.sampled_from(EOLS[:3])), min_size=1, max_size=8),
    st.integers(min_value=6, max_value=36),
    st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_an_event_is_kept_iff_it_fits_however_cut(
    shapes: list[tuple[int, bytes]], limit: int, cuts: list[int]
) -> None:
    """The size limit applies to the event, not to where a read happened to end."""
    blocks = [b"data: " + b"d" * n for n, _ in shapes]
    stream = b"".join(block + eol * 2 for block, (_, eol) in zip(blocks, shapes, strict=True))
    bounds = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    kept = [block[6:] for block in blocks if len(block) <= limit]
    for way in (chunks, [stream[i : i + 1] for i in range(len(stream))]):
        events, _, _, oversize = feed_all(way, limit)
        assert [e.data for e in events] == kept
        assert oversize == len(blocks) - len(kept)


def exposition(registry: CollectorRegistry) -> Samples:
    """The classic text as Prometheus reads it; it must always parse."""
    return parse(generate_latest(registry).decode("utf-8"))


def rig(max_models: int = CAP) -> tuple[Store, CollectorRegistry]:
    store = Store(LmxState(max_models=max_models, window_size=8), ExporterHealth())
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
named = st.tuples(st.sampled_from([*NAMED, "agent_started", "x y"]), payloads)
envelopes = st.tuples(
    st.just("message"),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["status", "model_change", "throughput", "odd"]), "data": payloads}
    ),
)
snapshots = st.builds(
    lambda models: Snapshot(version="1", models=dict.fromkeys(models, 1.0)),
    st.lists(st.sampled_from(MODELS), max_size=5),
)
steps = st.lists(st.one_of(named, envelopes, snapshots), min_size=1, max_size=30)


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
    store, registry = rig()
    last: Samples = {}
    for step in sequence:
        if isinstance(step, Snapshot):
            store.reconcile(step, store.seq())
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
        last = samples


def test_huge_durations_keep_histogram_sums_finite() -> None:
    store, registry = rig()
    for _ in range(3):
        store.ingest("model_loaded", b'{"model_id": "m", "duration_sec": 1e308}')
    sums = {k: v for k, v in exposition(registry).items() if k[0].endswith("_sum")}
    assert all(math.isfinite(v) for v in sums.values()), sums
