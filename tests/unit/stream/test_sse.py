"""SSE framing tables: bytes in (whole, one byte at a time, any split), events out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opta_exporter.core.events import SseEvent
from opta_exporter.stream.sse import MAX_RETRY_MS, SseParser, header_safe

E = SseEvent
CASES: list[tuple[str, bytes, list[SseEvent]]] = [
    ("named", b'event: model_loaded\ndata: {"a": 1}\n\n', [E("model_loaded", b'{"a": 1}', None)]),
    ("unnamed is message", b"data: x\n\n", [E("message", b"x", None)]),
    (
        "two events",
        b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n",
        [E("a", b"1", None), E("b", b"2", None)],
    ),
    ("multi-line data", b"data: x\ndata: y\n\n", [E("message", b"x\ny", None)]),
    ("CRLF", b"event: a\r\ndata: 1\r\n\r\n", [E("a", b"1", None)]),
    ("CR only", b"event: a\rdata: 1\r\r", [E("a", b"1", None)]),
    ("mixed endings", b"event: a\r\ndata: 1\n\r\n", [E("a", b"1", None)]),
    ("BOM at start", b"\xef\xbb\xbfevent: a\ndata: 1\n\n", [E("a", b"1", None)]),
    ("BOM later is no BOM", b"data: 1\n\n\xef\xbb\xbfdata: 2\n\n", [E("message", b"1", None)]),
    ("comments", b": keep-alive\nevent: a\n: more\ndata: 1\n\n", [E("a", b"1", None)]),
    ("comment-only block", b": ping\n\n", []),
    ("no space after colon", b"data:x\n\n", [E("message", b"x", None)]),
    ("only one space removed", b"data:  x\n\n", [E("message", b" x", None)]),
    ("field without colon", b"data\n\n", [E("message", b"", None)]),
    ("empty data", b"event: a\ndata:\n\n", [E("a", b"", None)]),
    ("unknown field", b"foo: bar\ndata: 1\n\n", [E("message", b"1", None)]),
    ("no data, no event", b"event: a\n\n", []),
    ("event type resets", b"event: a\n\ndata: 1\n\n", [E("message", b"1", None)]),
    ("extra blank lines", b"\n\n\ndata: 1\n\n\n\n", [E("message", b"1", None)]),
    ("incomplete tail", b"data: 1\n\ndata: 2\n", [E("message", b"1", None)]),
    (
        "id persists",
        b"id: 7\ndata: 1\n\ndata: 2\n\n",
        [E("message", b"1", "7"), E("message", b"2", "7")],
    ),
    (
        "id with NUL ignored",
        b"id: 7\ndata: 1\n\nid: 8\x00\ndata: 2\n\n",
        [E("message", b"1", "7"), E("message", b"2", "7")],
    ),
    (
        "empty id resets",
        b"id: 7\ndata: 1\n\nid\ndata: 2\n\n",
        [E("message", b"1", "7"), E("message", b"2", "")],
    ),
    (
        "utf-8 name and data",
        'event: é\ndata: {"m": "é"}\n\n'.encode(),
        [E("é", '{"m": "é"}'.encode(), None)],
    ),
    ("invalid utf-8 stays bytes", b"data: \xff\xfe\n\n", [E("message", b"\xff\xfe", None)]),
]


def feed_all(parser: SseParser, chunks: list[bytes]) -> list[SseEvent]:
    return [event for chunk in chunks for event in parser.feed(chunk)]


@pytest.mark.parametrize(("name", "stream", "expected"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("split", ["whole", "bytes", "pairs"])
def test_framing(name: str, stream: bytes, expected: list[SseEvent], split: str) -> None:
    if split == "whole":
        chunks = [stream]
    elif split == "bytes":
        chunks = [stream[i : i + 1] for i in range(len(stream))]
    else:
        chunks = [stream[i : i + 2] for i in range(0, len(stream), 2)]
    assert feed_all(SseParser(), chunks) == expected


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=20))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    stream = b"".join(case[1] for case in CASES if case[0] != "BOM later is no BOM")
    bounds = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *bounds], [*bounds, len(stream)], strict=True)]
    assert feed_all(SseParser(), chunks) == feed_all(SseParser(), [stream])


def test_retry_is_adopted_without_data_and_must_be_digits() -> None:
    parser = SseParser()
    assert parser.feed(b"retry: 1500\n\n") == []
    assert parser.retry_ms == 1500
    parser.feed(b"retry: soon\ndata: 1\n\n")
    assert parser.retry_ms == 1500


def test_id_without_data_is_kept_for_the_reconnect() -> None:
    parser = SseParser()
    parser.feed(b"id: 42\n\n")
    assert parser.last_event_id == "42"


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 4096])
def test_oversize_event_is_dropped_and_the_stream_resyncs(chunk_size: int) -> None:
    stream = b"data: ok1\n\n" + b"data: " + b"x" * 500 + b"\n\n" + b"event: a\ndata: ok2\n\n"
    parser = SseParser(max_event_bytes=100)
    chunks = [stream[i : i + chunk_size] for i in range(0, len(stream), chunk_size)]
    events = feed_all(parser, chunks)
    assert events == [E("message", b"ok1", None), E("a", b"ok2", None)]
    assert parser.oversize == 1


def test_memory_stays_bounded_for_an_endless_event() -> None:
    parser = SseParser(max_event_bytes=1000)
    parser.feed(b"data: ")
    for _ in range(1000):
        assert parser.feed(b"y" * 999) == []
        assert parser.buffered <= 1000 + 999
    assert parser.oversize == 1
    assert parser.feed(b"\n\ndata: back\n\n") == [E("message", b"back", None)]


def test_oversize_boundary_split_over_chunks() -> None:
    parser = SseParser(max_event_bytes=10)
    assert feed_all(parser, [b"data: " + b"z" * 20 + b"\n", b"\ndata: 1\n\n"]) == [
        E("message", b"1", None)
    ]
    assert parser.oversize == 1


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "model_loaded", "heartbeat", "quantize_progress"]),
            st.lists(
                st.text(
                    alphabet=st.characters(blacklist_characters="\r\n\x00", codec="utf-8"),
                    max_size=30,
                ),
                min_size=1,
                max_size=3,
            ),
        ),
        max_size=8,
    ),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_agrees_with_sseclient_on_well_formed_streams(
    events: list[tuple[str, list[str]]], newline: bytes
) -> None:
    """A differential check against the reference library on what it parses correctly."""
    from sseclient import SSEClient

    stream = b"".join(
        (f"event: {name}".encode() + newline if name else b"")
        + b"".join(b"data: " + line.encode() + newline for line in lines)
        + newline
        for name, lines in events
    )
    ours = [(e.event, e.data.decode()) for e in SseParser().feed(stream)]
    theirs = [(e.event, e.data) for e in SSEClient(iter([stream])).events()]
    assert ours == theirs


@pytest.mark.parametrize(
    "raw",
    [
        "✓".encode(),  # outside Latin-1: http.client cannot encode it
        b"\xff\xfe",  # not UTF-8: decodes to U+FFFD, outside Latin-1
        b"8\x00",  # NUL: WHATWG ignores it
        b"a\tb",
        b"a\x1bb",
        b"a\x7f",
        "a\x85".encode(),  # C1 (NEL)
        b"  8",  # one space is the separator; the other would lead the header value
    ],
    ids=["check-mark", "invalid-utf8", "nul", "tab", "esc", "del", "c1", "leading-space"],
)
def test_an_unsendable_id_is_ignored_and_counted(raw: bytes) -> None:
    """Before: such an id became Last-Event-ID and every reconnect failed building it."""
    parser = SseParser()
    events = parser.feed(b"id: 7\ndata: 1\n\nid: " + raw + b"\ndata: 2\n\nid: " + raw + b"\n\n")
    assert [e.id for e in events] == ["7", "7"]
    assert parser.last_event_id == "7"
    assert parser.bad_ids == 2
    assert parser.last_bad_id == raw.decode("utf-8", "replace")


@pytest.mark.parametrize("event_id", ["42", "é-Latin-1", "a b", "x~", "", "\xa0x\xff"])
def test_a_sendable_id_is_kept(event_id: str) -> None:
    parser = SseParser()
    parser.feed(b"id: " + event_id.encode() + b"\n\n")
    assert parser.last_event_id == event_id
    assert parser.bad_ids == 0
    assert header_safe(event_id)


def test_a_retry_of_thousands_of_digits_is_forever_not_a_crash() -> None:
    """int() refuses more than 4300 digits: that ValueError must not leave the parser."""
    parser = SseParser()
    parser.feed(b"retry: " + b"9" * 5000 + b"\n\n")
    assert parser.retry_ms == MAX_RETRY_MS
    parser.feed(b"retry: " + b"0" * 5000 + b"25\n\n")
    assert parser.retry_ms == 25
