"""The chunked decoder: RFC 9112 framing over reads split anywhere."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opta_exporter.stream.chunked import MAX_SIZE_LINE, ChunkError, Dechunker, dechunk


def frame(*payloads: bytes, last: bytes = b"0\r\n\r\n") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + last


def decode(reads: list[bytes]) -> bytes:
    return b"".join(dechunk(reads))


def test_many_chunks_in_one_read_come_out_as_one_payload() -> None:
    decoder = Dechunker()
    assert (
        decoder.feed(frame(b"data: 1\n\n", b"data: 2\n\n", last=b"")) == b"data: 1\n\ndata: 2\n\n"
    )
    assert decoder.at_boundary
    assert not decoder.done


def test_byte_at_a_time() -> None:
    wire = frame(b"event: a\ndata: {}\n\n", b"x" * 300)
    assert decode([wire[i : i + 1] for i in range(len(wire))]) == b"event: a\ndata: {}\n\n" + (
        b"x" * 300
    )


@pytest.mark.parametrize(
    "wire",
    [
        b"5;name=value\r\nhello\r\n0\r\n\r\n",  # an extension
        b"5\nhello\r\n0\r\n\r\n",  # a bare LF ends the size line, as urllib3 accepts
        b"05 \r\nhello\r\n0\r\n\r\n",  # leading zero, trailing space
        b"5\r\nhello\r\n0\r\nExpires: never\r\n\r\n",  # a trailer, never read
        b"5\r\nhello\r\n0\r\n",  # the last chunk without its blank line
    ],
)
def test_accepted_framings(wire: bytes) -> None:
    assert decode([wire]) == b"hello"


def test_the_last_chunk_ends_the_body_and_nothing_after_it_is_read() -> None:
    reads = iter([frame(b"a"), b"7\r\nignored\r\n"])
    assert list(dechunk(reads)) == [b"a"]
    assert next(reads) == b"7\r\nignored\r\n"


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"0x5\r\nhello\r\n", "bad chunk size"),  # int(x, 16) would take these
        (b"-5\r\nhello\r\n", "bad chunk size"),
        (b"1_0\r\n", "bad chunk size"),
        (b"zz\r\n", "bad chunk size"),
        (b"\r\n", "bad chunk size"),
        (b"1" * 17 + b"\r\n", "bad chunk size"),
        (b"5\r\nhelloXY", "not followed by CRLF"),
        (b"5" * MAX_SIZE_LINE, "size line too long"),
    ],
)
def test_broken_framing_is_a_broken_connection(wire: bytes, reason: str) -> None:
    with pytest.raises(ChunkError, match=reason):
        decode([wire])


@pytest.mark.parametrize("cut", [b"", b"5\r\nhel", b"5\r\nhello", b"5\r\nhello\r\n", b"5\r"])
def test_a_body_cut_short_is_a_broken_connection(cut: bytes) -> None:
    with pytest.raises(ChunkError, match="before the last chunk"):
        decode([cut])


def test_a_long_chunk_is_passed_on_as_it_arrives_not_held() -> None:
    decoder = Dechunker()
    assert decoder.feed(b"%x\r\n" % (10 << 20) + b"x" * 1000) == b"x" * 1000
    assert decoder.feed(b"y" * 65536) == b"y" * 65536
    assert not decoder.at_boundary


@given(
    st.lists(st.binary(min_size=1, max_size=300), max_size=20),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
)
def test_any_split_of_any_chunks_gives_the_payload(payloads: list[bytes], cuts: list[int]) -> None:
    wire = frame(*payloads)
    points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    reads = [wire[a:b] for a, b in itertools.pairwise(points)]
    assert decode(reads) == b"".join(payloads)
