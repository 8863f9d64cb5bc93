"""The landing page: a live view of this LMX, rendered on the server from /api/live's
JSON (web/live.py) so that it is whole without JavaScript and to `curl`; then
static/live.js keeps it current from /api/live/events.

The markup is the contract between the two: every figure has an id live.js fills in, and
both write the same text for the same document. Everything from LMX (model ids above
all) is escaped; a null figure (not fresh) is "—". The page references only its own
origin, by path (the icon is empty data, so that a browser asks for no /favicon.ico): no
CDN, no font, no request anywhere else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from opta_exporter.web import chart
from opta_exporter.web.chart import DASH, escape, number

STATIC = {"live.js": "text/javascript; charset=utf-8", "live.css": "text/css; charset=utf-8"}


def gib(value: Any) -> str:
    n = number(value)
    return DASH if n is None else f"{n / 2**30:.1f} GiB"


def percent(value: Any) -> str:
    n = number(value)
    return DASH if n is None else f"{n * 100:.0f} %"


def count(value: Any) -> str:
    n = number(value)
    return DASH if n is None else f"{n:.0f}"


def _text(value: Any) -> str:
    return DASH if value is None or value == "" else str(value)


def ago(then: Any, now: Any) -> str:
    t, n = number(then), number(now)
    if t is None:
        return "last event never"
    if n is None:
        return "last event " + DASH
    return f"last event {max(n - t, 0.0):.1f} s ago"


def error_text(connection: Mapping[str, Any]) -> str:
    """The last connection to LMX that ended, and why (the reason is a label of
    opta_exporter_reconnects_total)."""
    error = connection.get("last_error")
    if not isinstance(error, str) or not error:
        return "never lost"
    return f"last lost at {_stamp(connection.get('last_error_time'))}: {error}"


def connection_text(connection: Mapping[str, Any]) -> str:
    """The exporter's connection to LMX, as live.js writes it (less its countdown)."""
    state = _text(connection.get("state"))
    backoff = number(connection.get("backoff_seconds"))
    if state in ("backoff", "auth_failed") and backoff is not None and backoff > 0:
        return f"{state}, retrying LMX in {backoff:.0f} s"
    return state


def models_rows(models: Sequence[Mapping[str, Any]]) -> str:
    if not models:
        return '<tr><td colspan="5">no model loaded</td></tr>'
    return "".join(
        f'<tr><th scope="row">{escape(_text(m.get("model")))}</th>'
        f"<td>{escape(_text(m.get('format')))}</td>"
        f"<td>{escape(gib(m.get('memory_bytes')))}</td>"
        f'<td data-readiness="{escape(_text(m.get("readiness")))}">'
        f"{escape(_text(m.get('readiness')))}</td>"
        f"<td>{escape(count(m.get('crashes')))}</td></tr>"
        for m in models
    )


def memory_text(memory: Mapping[str, Any]) -> str:
    used, total = gib(memory.get("used_bytes")), gib(memory.get("total_bytes"))
    usage, threshold = percent(memory.get("usage_ratio")), percent(memory.get("threshold_ratio"))
    return f"{used} of {total} ({usage}; LMX sheds load at {threshold})"


def in_flight_text(requests: Mapping[str, Any]) -> str:
    return f"{count(requests.get('in_flight'))} of {count(requests.get('max_concurrent'))}"


def _yes(value: Any) -> str:
    return DASH if value is None else ("yes" if value else "no")


def render(doc: Mapping[str, Any], *, version: str, lmx_url: str, telemetry_path: str) -> str:
    """The whole page for one /api/live document."""
    conn = doc.get("connection") or {}
    lmx = doc.get("lmx") or {}
    memory = lmx.get("memory") or {}
    requests = lmx.get("requests") or {}
    relay = lmx.get("relay") or {}
    usage = number(memory.get("usage_ratio"))
    threshold = number(memory.get("threshold_ratio"))
    meter = (
        '<meter id="memory-meter" min="0" max="1"'
        + (" hidden" if usage is None else f' value="{usage:.4f}"')
        + ("" if threshold is None else f' high="{threshold:.4f}"')
        + "></meter> "
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Opta LMX — opta-exporter</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/live.css">
</head><body>
<header><h1>Opta LMX <span id="lmx-version">{escape(_text(lmx.get("version")))}</span></h1>
<p>opta-exporter {escape(version)}, reading <code>{escape(lmx_url)}</code></p>
<p id="view-status" role="status" aria-live="polite" data-state="static">
<span id="view-state">snapshot</span>, <time id="doc-time">{escape(_stamp(doc.get("time")))}</time>
</p></header>
<main>
<section aria-labelledby="h-conn"><h2 id="h-conn">Connection to LMX</h2>
<p data-state="{escape(_text(conn.get("state")))}" id="connection">Event stream:
<span id="conn-state"><strong>{escape(connection_text(conn))}</strong></span>;
<span id="last-event">{escape(ago(conn.get("last_event"), doc.get("time")))}</span>;
<span id="last-error">{escape(error_text(conn))}</span></p></section>
<section aria-labelledby="h-lmx"><h2 id="h-lmx">LMX</h2><dl>
<dt>Up</dt><dd id="lmx-up">{_yes(lmx.get("up"))}</dd>
<dt>Health</dt><dd id="lmx-health">{escape(_text(lmx.get("health")))}</dd>
<dt>Load shedding</dt><dd id="lmx-shedding">{_yes(lmx.get("shedding"))}</dd>
<dt>Memory</dt><dd>{meter}<span id="lmx-memory">{escape(memory_text(memory))}</span></dd>
<dt>In flight</dt><dd id="lmx-in-flight">{escape(in_flight_text(requests))}</dd>
<dt>Requests</dt><dd><span id="lmx-request-rate">{DASH}</span>/s
(<span id="lmx-requests-total">{escape(count(relay.get("requests_total")))}</span> total)</dd>
<dt>Errors</dt><dd><span id="lmx-error-rate">{DASH}</span>/s
(<span id="lmx-errors-total">{escape(count(relay.get("errors_total")))}</span> total)</dd>
</dl></section>
<section aria-labelledby="h-models"><h2 id="h-models">Models</h2>
<div class="scroll"><table><thead><tr><th scope="col">Model</th><th scope="col">Format</th>
<th scope="col">Memory</th><th scope="col">Readiness</th><th scope="col">Crashes</th></tr>
</thead><tbody id="models">{models_rows(doc.get("models") or [])}</tbody></table></div>
</section>
<section aria-labelledby="h-tps"><h2 id="h-tps">Throughput</h2>
{chart.render(doc.get("throughput") or {})}</section>
</main>
<footer><ul>
<li><a href="{escape(telemetry_path)}">Metrics</a></li>
<li><a href="/-/healthy">Healthy</a> (200 while it serves)</li>
<li><a href="/-/ready">Ready</a> (200 once LMX was read, the event stream is open and every
thread runs; 503 and the reason otherwise)</li>
<li><a href="/healthz">Health</a> (JSON)</li>
<li><a href="/api/live">Live</a> (JSON) and <a href="/api/live/events">its event stream</a></li>
</ul></footer>
<script src="/static/live.js" defer></script>
</body></html>
"""


def _stamp(value: Any) -> str:
    n = number(value)
    return DASH if n is None else time.strftime("%H:%M:%S UTC", time.gmtime(n))


def static(name: str) -> tuple[bytes, str] | None:
    """A file of static/ (live.js, live.css) and its Content-Type; None for any other
    name (asked before the cache, so that names from requests never fill it)."""
    ctype = STATIC.get(name)
    return None if ctype is None else (_read(name), ctype)


@cache
def _read(name: str) -> bytes:
    return resources.files("opta_exporter.web").joinpath("static", name).read_bytes()
