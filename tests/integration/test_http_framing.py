"""How the server frames requests, over raw sockets: a body on GET is never taken for
the next request, conflicting or chunked framing is refused and the connection closed,
an oversized head is refused; and generated request bytes never kill the server, never
get a 500, and leave /metrics valid."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable, Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.store import Store, SystemClock
from opta_exporter.web.app import make_app
from opta_exporter.web.connection import MAX_DISCARDED_BODY, MAX_HEAD_BYTES
from opta_exporter.web.httpd import MetricsServer
from tests.conftest import WAIT
from tests.helpers import promtool_check

_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"ok {environ['PATH_INFO']}\n".encode()]


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    server = MetricsServer("127.0.0.1", 0, app, idle_timeout=WAIT, head_timeout=WAIT)
    server.start()
    yield server
    server.stop()


def exchange(port: int, data: bytes) -> bytes:
    """Sends `data` and returns all the server answers until it closes the connection:
    the server, not the socket's timeout, must end the exchange."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        parts = []
        while chunk := sock.recv(65536):
            parts.append(chunk)
    return b"".join(parts)


def statuses(reply: bytes) -> list[int]:
    return [int(code) for code in _STATUS.findall(reply)]


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
LAST = b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def test_a_body_on_get_is_dropped_not_parsed_as_a_request(server: MetricsServer) -> None:
    head = b"GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
    reply = exchange(server.port, head + SMUGGLED + LAST)
    assert statuses(reply) == [200, 200]
    assert b"ok /a\n" in reply
    assert reply.endswith(b"ok /last\n")
    assert b"smuggled" not in reply


def test_repeated_equal_lengths_are_one_length(server: MetricsServer) -> None:
    head = b"GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n"
    reply = exchange(server.port, head + b"abc" + LAST)
    assert statuses(reply) == [200, 200]
    assert reply.endswith(b"ok /last\n")


def test_a_body_too_large_to_drop_is_refused_and_closed(server: MetricsServer) -> None:
    head = b"GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (MAX_DISCARDED_BODY + 1)
    reply = exchange(server.port, head)  # the server does not wait for the body
    assert statuses(reply) == [413]
    assert b"Connection: close" in reply


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: 0\r\nContent-Length: 5\r\n",
        b"Content-Length: 1, 2\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 0x10\r\n",
        b"Content-Length: \xb2\r\n",  # a digit to str.isdigit, not to HTTP
        b"Content-Length: 99999999999999999999999\r\n",
    ],
)
def test_conflicting_or_bad_lengths_are_400_and_close(
    server: MetricsServer, lengths: bytes
) -> None:
    reply = exchange(server.port, b"GET /a HTTP/1.1\r\nHost: t\r\n" + lengths + b"\r\n" + SMUGGLED)
    assert statuses(reply) == [400]
    assert b"Connection: close" in reply


@pytest.mark.parametrize("coding", [b"chunked", b"gzip, chunked", b"identity"])
def test_transfer_encoding_on_a_request_is_400_and_close(
    server: MetricsServer, coding: bytes
) -> None:
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    head = b"GET /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
    reply = exchange(server.port, head + body)
    assert statuses(reply) == [400]
    assert b"smuggled" not in reply


def test_a_head_over_the_bound_is_431_and_close(server: MetricsServer) -> None:
    """Many headers each well inside the library's 64 KiB line limit, 90 KiB in all."""
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(90))
    reply = exchange(server.port, b"GET /a HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    assert statuses(reply) == [431]


def test_a_request_line_over_the_bound_is_414(server: MetricsServer) -> None:
    reply = exchange(server.port, b"GET /" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n")
    assert statuses(reply) == [414]


def test_a_head_just_inside_the_bound_is_served(server: MetricsServer) -> None:
    request = b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    filler = MAX_HEAD_BYTES - len(request) - len(b"X: \r\n\r\n")
    reply = exchange(server.port, request + b"X: " + b"v" * filler + b"\r\n\r\n")
    assert statuses(reply) == [200]


# -- generated requests --------------------------------------------------------------

_TOKEN = st.text(alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCXYZ", min_size=1)
_VALUE = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_NAMES = st.sampled_from(
    [
        b"Host",
        b"Accept",
        b"Accept-Encoding",
        b"Content-Length",
        b"Transfer-Encoding",
        b"Connection",
        b"Expect",
        b"Authorization",
    ]
) | _TOKEN.map(str.encode)
_VALUES = (
    st.sampled_from(
        [
            b"0",
            b"5",
            b"1, 2",
            b"chunked",
            b"close",
            b"keep-alive",
            b"100-continue",
            b"gzip;q=0",
            b"*;q=0.5",
            b"application/openmetrics-text; version=9.9.9",
            b"application/openmetrics-text; version=x;q=nan",
            b"text/plain;q=2, application/openmetrics-text;q=-1",
            b"Basic !!!",
        ]
    )
    | _VALUE
)
_HEADER = st.tuples(_NAMES, st.sampled_from([b": ", b":", b" : ", b"\t"]), _VALUES).map(b"".join)
_LINE_END = st.sampled_from([b"\r\n", b"\n"])
# Mostly well-formed request lines, so the headers reach the parser and the app.
_REQUEST_LINE = st.tuples(
    st.sampled_from([b"GET"] * 5 + [b"HEAD", b"POST", b"OPTIONS", b"G\x00T", b""]),
    st.sampled_from([b" /metrics"] * 5 + [b" /", b" /healthz", b" /m%zz?x", b" *", b" http://x/"]),
    st.sampled_from([b" HTTP/1.1"] * 5 + [b" HTTP/1.0", b" HTTP/2.0", b" HTTP/1.1x", b""]),
).map(b"".join)
_HEAD = st.builds(
    lambda line, headers, end, body: line + end + b"".join(h + end for h in headers) + end + body,
    _REQUEST_LINE,
    st.lists(_HEADER, max_size=8),
    _LINE_END,
    st.binary(max_size=16),
)
REQUESTS = st.lists(_HEAD | st.binary(max_size=200), min_size=1, max_size=3).map(b"".join)


@contextlib.contextmanager
def exporter_server() -> Iterator[MetricsServer]:
    """The exporter's own app over an empty store, with short deadlines."""
    store = Store(LmxState(), ExporterHealth(), SystemClock())
    config = Config(lmx_url="http://127.0.0.1:9")
    server = MetricsServer(
        "127.0.0.1", 0, make_app(store, None, config), idle_timeout=2.0, head_timeout=1.0
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_generated_requests_never_break_the_server() -> None:
    with exporter_server() as server:
        url = f"http://127.0.0.1:{server.port}/metrics"

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(REQUESTS)
        def one(data: bytes) -> None:
            with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
                with contextlib.suppress(ConnectionError):
                    sock.sendall(data)
                    sock.shutdown(socket.SHUT_WR)  # the server sees the end at once
                reply = b""
                with contextlib.suppress(ConnectionError):
                    while chunk := sock.recv(65536):
                        reply += chunk
            assert 500 not in statuses(reply), reply[:300]
            assert requests.get(url, timeout=WAIT).status_code == 200

        one()
        for accept in ("", "application/openmetrics-text; version=9.9.9"):
            scrape = requests.get(url, headers={"Accept": accept}, timeout=WAIT)
            assert scrape.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            promtool_check(scrape.text)
