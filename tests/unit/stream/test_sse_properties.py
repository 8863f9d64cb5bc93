"""Properties of the SSE parser (stream/sse.py): the same events however the stream is cut
(empty reads included), never much more held than one event's limit, and the size limit
applied to the event, not to where a read ended."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from opta_exporter.stream.sse import MAX_EVENT_BYTES, SseParser
from tests.unit.stream.sse_bytes import EOLS, SETTINGS, pieces


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
