"""The landing page (web/page.py): every figure of an /api/live document rendered on the
server, LMX's text escaped, "—" for a figure that is not fresh, and the static files."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from opta_exporter.web.chart import DASH
from opta_exporter.web.page import render, static

GIB = 2**30
DOC: dict[str, Any] = {
    "time": 1_700_000_100.0,
    "connection": {"state": "open", "backoff_seconds": 0.0, "last_event": 1_700_000_098.5},
    "lmx": {
        "up": True,
        "version": "0.9.3",
        "health": "degraded",
        "shedding": True,
        "memory": {
            "used_bytes": 48 * GIB,
            "total_bytes": 64 * GIB,
            "threshold_ratio": 0.95,
            "usage_ratio": 0.75,
        },
        "requests": {"in_flight": 3.0, "max_concurrent": 8.0},
        "relay": {"requests_total": 1234.0, "errors_total": 56.0},
    },
    "models": [
        {
            "model": "mlx-community/Qwen3-8B-4bit",
            "format": "mlx",
            "memory_bytes": 4.5 * GIB,
            "readiness": "routable",
            "crashes": 2.0,
        }
    ],
    "throughput": {
        "window_seconds": 300.0,
        "resolution_seconds": 1.0,
        "samples": [[1_700_000_090.0, 40.0], [1_700_000_095.0, 80.0], [1_700_000_100.0, 60.0]],
    },
    "sources": {"status": {"up": True, "last_success": 1_700_000_099.0}},
}


def page(doc: dict[str, Any], **kwargs: str) -> str:
    args = {"version": "1.2.3", "lmx_url": "http://127.0.0.1:1234", "telemetry_path": "/metrics"}
    args.update(kwargs)
    return render(doc, **args)


def by_id(html: str, element_id: str) -> str:
    """The text inside the element with this id (no nested element of the same tag)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no #{element_id}"
    return re.sub(r"<[^>]+>", "", match.group(2)).strip()


def test_every_figure_is_rendered() -> None:
    html = page(DOC)
    assert by_id(html, "lmx-version") == "0.9.3"
    assert by_id(html, "conn-state") == "open"
    assert by_id(html, "last-event") == "last event 1.5 s ago"
    assert by_id(html, "lmx-up") == "yes"
    assert by_id(html, "lmx-health") == "degraded"
    assert by_id(html, "lmx-shedding") == "yes"
    assert by_id(html, "lmx-memory") == "48.0 GiB of 64.0 GiB (75 %; LMX sheds load at 95 %)"
    assert '<meter id="memory-meter" min="0" max="1" value="0.7500" high="0.9500">' in html
    assert by_id(html, "lmx-in-flight") == "3 of 8"
    assert by_id(html, "lmx-requests-total") == "1234"
    assert by_id(html, "lmx-errors-total") == "56"
    # a rate needs two totals: the browser computes it
    assert by_id(html, "lmx-request-rate") == DASH
    assert by_id(html, "doc-time") == "22:15:00 UTC"
    row = by_id(html, "models")
    for text in ("mlx-community/Qwen3-8B-4bit", "mlx", "4.5 GiB", "routable", "2"):
        assert text in row
    assert by_id(html, "tps-latest") == "60.0 tokens/s"
    assert by_id(html, "tps-peak") == "80.0"
    assert by_id(html, "tps-window") == "300 s"
    assert by_id(html, "tps-resolution") == "1 s"
    assert 'data-count="3"' in html
    assert 'points="0.0,85.0 300.0,10.0 600.0,47.5"' in html


def test_backoff_shows_its_wait() -> None:
    doc = copy.deepcopy(DOC)
    doc["connection"] = {
        "state": "backoff",
        "backoff_seconds": 4.0,
        "last_event": None,
        "last_error": "connect_error: cannot connect (<ConnectionError>)",
        "last_error_time": 1_700_000_099.0,
    }
    html = page(doc)
    assert by_id(html, "conn-state") == "backoff, retrying LMX in 4 s"
    assert by_id(html, "last-event") == "last event never"
    assert by_id(html, "last-error") == (
        "last lost at 22:14:59 UTC: connect_error: cannot connect (&lt;ConnectionError&gt;)"
    )
    assert by_id(page(DOC), "last-error") == "never lost"
    assert 'data-state="backoff"' in html


def test_model_ids_and_settings_are_escaped() -> None:
    doc = copy.deepcopy(DOC)
    doc["models"][0]["model"] = '<script>alert("x&y")</script>'
    doc["lmx"]["version"] = "<b>"
    html = page(doc, lmx_url="http://lmx.test/<i>", telemetry_path="/m<x>")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;" in html
    assert "<b>" not in html
    assert "<i>" not in html
    assert 'href="/m&lt;x&gt;"' in html


def test_nulls_are_a_dash() -> None:
    doc = copy.deepcopy(DOC)
    doc["connection"] = {"state": None, "backoff_seconds": None, "last_event": None}
    doc["lmx"] = {
        "up": False,
        "version": None,
        "health": None,
        "shedding": False,
        "memory": dict.fromkeys(DOC["lmx"]["memory"]),
        "requests": {"in_flight": None, "max_concurrent": None},
        "relay": {"requests_total": None, "errors_total": None},
    }
    doc["models"] = [dict.fromkeys(DOC["models"][0]) | {"model": "m"}]
    doc["throughput"] = {"window_seconds": 300.0, "resolution_seconds": None, "samples": []}
    html = page(doc)
    for element in ("lmx-version", "conn-state", "lmx-health", "lmx-requests-total"):
        assert by_id(html, element) == DASH
    assert by_id(html, "lmx-memory") == f"{DASH} of {DASH} ({DASH}; LMX sheds load at {DASH})"
    assert by_id(html, "lmx-in-flight") == f"{DASH} of {DASH}"
    assert by_id(html, "tps-latest") == DASH
    assert by_id(html, "tps-resolution") == DASH
    assert by_id(html, "models").count(DASH) == 4
    assert '<meter id="memory-meter" min="0" max="1" hidden>' in html
    assert 'data-count="0"' in html


def test_an_empty_document_still_renders() -> None:
    html = page({})
    assert by_id(html, "models") == "no model loaded"
    assert by_id(html, "doc-time") == DASH


def test_the_page_refers_only_to_its_own_origin() -> None:
    """No CDN, no font, no URL with a host: everything is a path on this origin."""
    html = page(DOC)
    urls = re.findall(r'(?:href|src)="([^"]*)"', html)
    assert "data:," in urls  # the icon: no /favicon.ico asked for
    for url in urls:
        if url == "data:,":
            continue
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
    js, _ = static("live.js") or (b"", "")
    assert re.findall(rb"[a-z]+://", js) == []
    assert "adminkey" not in html.lower().replace("-", "").replace("_", "")


@pytest.mark.parametrize("name", ["live.js", "live.css"])
def test_static_files_ship(name: str) -> None:
    found = static(name)
    assert found is not None
    body, ctype = found
    assert body
    assert ctype.endswith("charset=utf-8")


def test_other_static_names_are_not_served() -> None:
    assert static("../page.py") is None
    assert static("page.py") is None
