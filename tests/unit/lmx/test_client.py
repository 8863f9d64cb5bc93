"""The one LMX client: the key only in its header, no redirects, errors safe to log."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import requests
import responses

from opta_exporter.config import Config
from opta_exporter.lmx.client import LmxClient, LmxError

LMX = "http://lmx.test:1234"
KEY = "s3cret-admin-key"
PACKAGE = Path(__file__).resolve().parents[3] / "opta_exporter"


def client(key: str | None = KEY) -> LmxClient:
    return LmxClient(LMX, key, requests.Session(), connect_timeout=2.0)


@responses.activate
def test_the_key_goes_in_the_header_and_nowhere_else() -> None:
    responses.get(f"{LMX}/admin/status", json={"version": "1"})
    assert client().read_json("/admin/status") == {"version": "1"}
    request = responses.calls[0].request
    assert request.headers["X-Admin-Key"] == KEY
    assert request.headers["Accept"] == "application/json"
    assert KEY not in (request.url or "")


@responses.activate
def test_no_key_sends_no_header() -> None:
    responses.get(f"{LMX}/admin/metrics", body="x 1\n")
    assert client(None).read_text("/admin/metrics") == "x 1\n"
    assert "X-Admin-Key" not in responses.calls[0].request.headers


@responses.activate
def test_open_sends_the_callers_headers_and_both_timeouts() -> None:
    responses.get(f"{LMX}/admin/events", body="", content_type="text/event-stream")
    with client().open(
        "/admin/events", accept="text/event-stream", read_timeout=45.0, headers={"X": "y"}
    ) as resp:
        assert resp.status_code == 200
    call = responses.calls[0].request
    assert call.headers["X"] == "y"
    assert call.headers["Accept"] == "text/event-stream"
    assert call.headers["X-Admin-Key"] == KEY
    sent = getattr(call, "req_kwargs")  # noqa: B009 (responses adds it; requests' stubs do not know it)
    assert sent["timeout"] == (2.0, 45.0)
    assert sent["stream"] is True


@responses.activate
def test_a_redirect_is_never_followed() -> None:
    """requests would carry X-Admin-Key to wherever the Location points."""
    responses.get(f"{LMX}/admin/status", status=302, headers={"Location": "http://evil.test/"})
    with pytest.raises(LmxError) as err:
        client().read_json("/admin/status")
    assert err.value.status == 302
    assert str(err.value) == "/admin/status: HTTP 302"
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    ("answer", "detail", "status"),
    [
        ({"status": 401}, "HTTP 401, admin key refused", 401),
        ({"status": 403, "json": {"detail": "Invalid"}}, "HTTP 403, admin key refused", 403),
        ({"status": 503, "json": {"error": "overloaded"}}, "HTTP 503", 503),
        ({"body": requests.ConnectTimeout(f"to {LMX}?key={KEY}")}, "timed out", None),
        ({"body": requests.ReadTimeout("slow")}, "timed out", None),
        (
            {"body": requests.ConnectionError(f"refused {LMX} {KEY}")},
            "cannot connect or read (ConnectionError)",
            None,
        ),
        ({"body": "<html>login</html>"}, "body is not JSON", 200),
        ({"json": [1, 2]}, "body is not a JSON object", 200),
        ({"body": "[" * 100_000}, "body nests too deeply to be LMX's JSON", 200),
    ],
)
@responses.activate
def test_failures_are_lmx_errors_safe_to_log(
    answer: dict[str, object], detail: str, status: int | None
) -> None:
    responses.get(f"{LMX}/admin/memory", **answer)
    with pytest.raises(LmxError) as err:
        client().read_json("/admin/memory")
    assert err.value.detail == detail
    assert err.value.status == status
    assert str(err.value) == f"/admin/memory: {detail}"
    assert KEY not in str(err.value)
    assert LMX not in str(err.value)
    assert err.value.__cause__ is None  # nothing chained that a traceback could print


@responses.activate
def test_a_body_over_the_limit_stops_the_read() -> None:
    responses.get(f"{LMX}/admin/metrics", body="x" * 5000)
    with pytest.raises(LmxError, match="body over 4096 bytes"):
        client().read_text("/admin/metrics", max_bytes=4096)


@responses.activate
def test_text_that_is_not_utf8_is_read_not_refused() -> None:
    responses.get(f"{LMX}/admin/metrics", body=b'm{model="\xff"} 1\n')
    assert client().read_text("/admin/metrics") == 'm{model="\ufffd"} 1\n'


def test_repr_and_config_never_show_the_key() -> None:
    lmx = LmxClient.from_config(
        Config(lmx_url=LMX + "/", admin_key=KEY, connect_timeout=3.0), requests.Session()
    )
    assert KEY not in repr(lmx)
    assert lmx.base_url == LMX
    assert lmx.connect_timeout == 3.0


def _places(tree: ast.AST) -> set[str]:
    """What in a module talks to LMX on its own: the header's name or allow_redirects."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == "X-Admin-Key":
            found.add("X-Admin-Key")
        if isinstance(node, ast.keyword) and node.arg == "allow_redirects":
            found.add("allow_redirects")
    return found


def test_every_get_to_lmx_goes_through_the_client() -> None:
    """One place sets the key header and refuses redirects: no reader does it again."""
    owners = {
        str(path.relative_to(PACKAGE)): places
        for path in sorted(PACKAGE.rglob("*.py"))
        if (places := _places(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert owners == {"lmx/client.py": {"X-Admin-Key", "allow_redirects"}}


OVERLOADED = {
    "error": {
        "message": "Server under memory pressure",
        "type": "server_error",
        "code": "overloaded",
    }
}


class Heard:
    def __init__(self) -> None:
        self.answers: list[tuple[str, int, bool]] = []

    def answered(self, path: str, status: int, overloaded: bool) -> None:
        self.answers.append((path, status, overloaded))


@responses.activate
def test_load_shedding_is_told_apart_from_other_503s() -> None:
    heard = Heard()
    lmx = LmxClient(LMX, KEY, requests.Session(), answers=heard)
    responses.get(f"{LMX}/admin/status", status=503, json=OVERLOADED, headers={"retry-after": "30"})
    responses.get(f"{LMX}/admin/memory", status=503, body="upstream down")
    responses.get(f"{LMX}/admin/health", json={"status": "degraded"})
    with pytest.raises(LmxError) as shed:
        lmx.read_json("/admin/status")
    with pytest.raises(LmxError) as other:
        lmx.read_json("/admin/memory")
    assert lmx.read_json("/admin/health") == {"status": "degraded"}
    assert (shed.value.overloaded, shed.value.detail) == (True, "HTTP 503, LMX is shedding load")
    assert (other.value.overloaded, other.value.detail) == (False, "HTTP 503")
    assert heard.answers == [
        ("/admin/status", 503, True),
        ("/admin/memory", 503, False),
        ("/admin/health", 200, False),
    ]


@responses.activate
def test_a_stream_refused_while_shedding_is_heard_too() -> None:
    heard = Heard()
    lmx = LmxClient(LMX, None, requests.Session(), answers=heard)
    responses.get(f"{LMX}/admin/events", status=503, json=OVERLOADED)
    with lmx.open("/admin/events", accept="text/event-stream", read_timeout=5.0) as resp:
        assert resp.status_code == 503
    assert heard.answers == [("/admin/events", 503, True)]


@pytest.mark.parametrize(
    ("body", "deeper"),
    [
        (b'{"models": [{"id": "a"}, {"id": "b"}]}', False),
        (b"[" * 5 + b"]" * 5, False),
        (b"[" * 6 + b"]" * 6, True),
        (b"[" * 100_000, True),  # never closed: still refused, not decoded
        (b'{"id": "' + b"[" * 50 + b'"}', False),  # brackets inside a string do not nest
        (b'{"id": "a\\"' + b"[" * 50 + b'"}', False),  # nor after an escaped quote
        (b"[]" * 1000, False),  # many, side by side
    ],
)
def test_nesting_is_measured_outside_strings(body: bytes, deeper: bool) -> None:
    from opta_exporter.lmx.client import nests_deeper

    assert nests_deeper(body, 5) is deeper
