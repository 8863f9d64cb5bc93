"""Fuzzing the stream's pure readers (stream/sse.py, stream/chunked.py) with hostile bytes:
nothing but the documented error leaves them, what they keep obeys its rules (an id the
client can send back, a retry that is a bounded count of milliseconds), and whatever
they let through leaves a /metrics that promtool accepts.

Each property is bounded (SETTINGS: 60 examples, the promtool one 25) so the file runs in
seconds.
"""

from __future__ import annotations

import http.client
import itertools

import requests.utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opta_exporter.core.events import SseEvent
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.metrics.collector import tables
from opta_exporter.metrics.exposition import render
from opta_exporter.store import Store
from opta_exporter.stream.chunked import ChunkError, Dechunker
from opta_exporter.stream.sse import MAX_RETRY_MS, SseParser
from tests.fakes import FakeClock
from tests.helpers import promtool_check
from tests.unit.stream.sse_bytes import LINES, SETTINGS, pieces

# What a hostile or broken server may put on the id and retry lines.
HOSTILE = [
    "id: ✓".encode(),
    b"id: \xff\xfe",
    b"id: 8\x00",
    b"id: a\x1bb",
    b"id:  leading",
    b"id: \xc2\x85",  # NEL, a C1 control, as UTF-8
    b"id: caf\xc3\xa9",  # e-acute: Latin-1, sendable
    b"id: 99",
    b"retry: 1000000000000",
    b"retry: " + b"9" * 5000,  # over int()'s 4300 digits
    b"retry: -5",
    b"retry: 1e3",
    "retry: ٣".encode(),  # an Arabic-Indic digit: not ASCII
    b"event: model_loaded",
    b'data: {"model_id": "m\\u2713", "format": "mlx", "memory_gb": 1}',
    b'data: {"model_id": "x\\ny", "format": "gguf"}',
]
EOLS = [b"\n", b"\r", b"\r\n", b"\n\n", b"\r\n\r\n"]
hostile_pieces = st.lists(
    st.sampled_from(HOSTILE) | st.sampled_from(LINES) | st.sampled_from(EOLS) | st.binary(),
    max_size=40,
)
cuts = st.lists(st.integers(min_value=0, max_value=6000), max_size=12)


def cut(stream: bytes, at: list[int]) -> list[bytes]:
    bounds = [0, *sorted(min(c, len(stream)) for c in at), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def sendable(event_id: str) -> bool:
    """The oracle is the clients themselves: requests' header check, then http.client's
    encoding and check (no connection is made before endheaders)."""
    try:
        requests.utils.check_header_validity(("Last-Event-ID", event_id))
        conn = http.client.HTTPConnection("127.0.0.1")
        conn.putrequest("GET", "/admin/events")
        conn.putheader("Last-Event-ID", event_id)
    except (ValueError, requests.exceptions.InvalidHeader):
        return False
    return True


def check_kept(parser: SseParser, events: list[SseEvent], limit: int) -> None:
    assert parser.buffered <= limit + 1
    for event_id in [parser.last_event_id, *(e.id for e in events)]:
        assert event_id is None or sendable(event_id), event_id
    assert parser.retry_ms is None or 0 <= parser.retry_ms <= MAX_RETRY_MS
    for event in events:
        assert isinstance(event.event, str)
        assert b"\r" not in event.data  # line ends are the parser's, never the data's
        assert len(event.data) <= limit


@SETTINGS
@given(hostile_pieces, cuts, st.integers(min_value=8, max_value=256))
def test_any_bytes_cut_anywhere_never_raise_and_keep_only_sendable_ids(
    parts: list[bytes], at: list[int], limit: int
) -> None:
    parser = SseParser(max_event_bytes=limit)
    for chunk in cut(b"".join(parts), at):
        check_kept(parser, parser.feed(chunk), limit)


def by_the_rule(event_id: str) -> bool:
    """stream.md's rule, stricter than the clients: printable Latin-1, no leading space."""
    printable = all(" " <= c <= "~" or "\xa0" <= c <= "\xff" for c in event_id)
    return printable and not event_id.startswith(" ")


@SETTINGS
@given(
    st.lists(st.text(alphabet=st.characters(exclude_characters="\r\n", codec="utf-8")), max_size=8)
)
def test_the_id_kept_is_the_last_one_the_rule_allows(ids: list[str]) -> None:
    """An id the rule refuses is skipped (and counted), every other one replaces the
    last; and whatever the rule allows the clients can send."""
    parser = SseParser()
    parser.last_event_id = "start"
    parser.feed(b"".join(b"id: " + i.encode() + b"\n\n" for i in ids))
    good = [i for i in ids if by_the_rule(i)]
    assert parser.last_event_id == (good[-1] if good else "start")
    assert parser.bad_ids == len(ids) - len(good)
    assert all(map(sendable, good))


@SETTINGS
@given(st.text(alphabet="0123456789", min_size=1, max_size=40) | st.text(max_size=12))
def test_retry_is_digits_only_in_milliseconds_bounded(value: str) -> None:
    parser = SseParser()
    parser.feed(b"retry: " + value.encode() + b"\n\n")
    if value.isascii() and value.isdigit():
        assert parser.retry_ms == min(int(value), MAX_RETRY_MS)
    else:
        assert parser.retry_ms is None


@SETTINGS
@given(st.lists(st.binary(max_size=64) | st.sampled_from([*EOLS, b"0\r\n", b"5;x\r\n"])), cuts)
def test_any_bytes_into_the_dechunker_raise_only_chunk_error(
    parts: list[bytes], at: list[int]
) -> None:
    """Broken framing is a broken connection (ChunkError); never anything else, and never
    more payload than bytes in."""
    decoder, wire, out = Dechunker(), b"".join(parts), 0
    try:
        for chunk in cut(wire, at):
            out += len(decoder.feed(chunk))
            if decoder.done:
                break
    except ChunkError:
        return
    assert out <= len(wire)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_pieces | pieces, cuts)
def test_any_frames_through_ingest_leave_metrics_promtool_accepts(
    parts: list[bytes], at: list[int]
) -> None:
    """Whatever the parser lets through, and what the consumer counts beside it (oversize,
    bad ids), /metrics stays valid exposition text."""
    store = Store(LmxState(max_models=3), ExporterHealth(), FakeClock())
    store.set_connection("open")
    parser = SseParser(max_event_bytes=256)
    for chunk in cut(b"".join(parts), at):
        oversize, bad_ids = parser.oversize, parser.bad_ids
        store.ingest_events(parser.feed(chunk))
        for _ in range(parser.oversize - oversize):
            store.count_error("oversize", "event over the limit")
        for _ in range(parser.bad_ids - bad_ids):
            store.count_error("bad_id", "unsendable id")
    view = store.view()
    text = render(tables(view.state, view.health, view.now, view.wall), openmetrics=False)
    assert "opta_exporter_event_errors_total" in text
    promtool_check(text)
