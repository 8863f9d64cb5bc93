"""The live page's guards in a real browser (headless Chromium, selenium, loopback only):
basic auth keeps out the page and its event stream, live.js paints at most every 500 ms
however fast documents arrive, always the newest one, a page left frees its stream,
live.js paints a document exactly as the server renders it, and its reconnects follow
the backoff rule (jittered, doubling, capped at 30 s).

The browser fixture and the helpers are test_live_page's (skipped, like it, where chromium
or chromedriver is missing, and a failure in CI)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import requests
from selenium.webdriver.chrome.webdriver import WebDriver

from lmx_simulator import LmxSimulator
from opta_exporter.daemon import Exporter
from opta_exporter.web.page import render
from opta_exporter.web.webconfig import load_web_config
from tests.conftest import WAIT
from tests.e2e.test_live_page import (  # the fixture, imported so that pytest finds it here
    attribute,
    browser,  # noqa: F401
    log,
    requested,
    text,
    until,
)
from tests.helpers import S3CRET_HASH

MakeExporter = Callable[..., Exporter]
MakeSim = Callable[..., LmxSimulator]
USER, PASSWORD = "prom", "s3cret"
PAINT_MS = 500  # live.js's PAINT_MS
# Clocks are not exact: live.js measures its 500 ms with Date.now(), in whole milliseconds
# of the wall clock (so a wait computed from two truncated readings may come up to 2 ms
# short), and the test with performance.now(), a different clock. 10 ms is room for that,
# and far from a second paint within the 500.
PAINT_SLACK_MS = 10
BURST = 100  # documents pushed ...
EVERY_MS = 10  # ... this far apart: a second of them, for the 500 ms bound to thin out
T0 = 1_765_119_000  # the first document's time; each next one a second later


def responses(performance: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(URL, status) of every response in these performance-log entries."""
    seen = []
    for entry in performance:
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            seen.append((str(response["url"]), int(response["status"])))
    return seen


def drained(driver: WebDriver, kind: str, into: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`into`, with what the log of this `kind` holds now appended (reading drains it)."""
    into.extend(log(driver, kind))
    return into


def refused_without_the_page(driver: WebDriver, url: str) -> None:
    """`url` answered 401 and the browser shows no live page. Headless Chromium has no
    login prompt: it shows its own error page (chrome-error://chromewebdata/), which puts
    exactly one SEVERE line in the console, the 401 itself."""
    performance: list[dict[str, Any]] = []
    until(
        driver,
        lambda d: (url, 401) in responses(drained(d, "performance", performance)),
        f"the 401 for {url}",
    )
    seen = responses(performance)
    assert (url, 401) in seen
    assert all(status == 401 for u, status in seen if u != "data:,"), seen
    # the page never came, so neither did its script or its stream
    assert not any(u.endswith(("/static/live.js", "/api/live/events")) for u, _ in seen)
    assert driver.execute_script("return document.getElementById('view-status')") is None
    assert "Opta LMX" not in driver.title
    console: list[dict[str, Any]] = []
    until(driver, lambda d: drained(d, "browser", console), "the 401's line in the console")
    assert [(e["level"], e["source"]) for e in console] == [("SEVERE", "network")], console
    assert "status of 401" in console[0]["message"]


def goes_live(driver: WebDriver, url: str) -> None:
    """Loading `url` (the page) shows it, live: its stream was let through too. Every
    response the page saw was a 200 from the exporter, and its console stays clean (no
    filter: the 401s of earlier loads were drained from the log before this one)."""
    driver.get(url)
    until(driver, lambda d: attribute(d, "view-status", "data-state") == "live", "live")
    assert driver.title == "Opta LMX — opta-exporter"
    seen = responses(log(driver, "performance"))
    base = url.removesuffix("/")
    assert {u for u, _ in seen} == {
        base + path for path in ("/", "/static/live.css", "/static/live.js", "/api/live/events")
    }
    assert all(status == 200 for _, status in seen), seen
    assert [e for e in log(driver, "browser") if e["level"] == "SEVERE"] == []


def test_basic_auth_guards_the_page_and_its_stream(
    tmp_path: Path,
    make_sim: MakeSim,
    make_exporter: MakeExporter,
    browser: WebDriver,  # noqa: F811
) -> None:
    """Basic auth on: without credentials, or with a wrong password, the browser gets a 401
    and no page; with them in the URL the page goes live, which it can only do once its
    EventSource got a document, so the stream was authorized as well.

    How Chromium does it (seen by instrumenting the server's basic auth while writing this
    test, not asserted here; DevTools shows nothing of it): with credentials in the URL,
    the page and each of its requests (live.css, live.js and the EventSource) go out first
    without an Authorization header, get the 401 challenge and are sent again with the
    URL's credentials. The subresources' URLs carry the credentials themselves, resolved
    against the page's URL, and the performance log shows only the final 200s, neither the
    401s nor the header. Once they worked, Chromium's auth cache sends them up front for
    this origin: the plain URL loads and streams too, as for someone who typed them into
    the browser's prompt (which headless Chromium lacks).
    """
    web_file = tmp_path / "web.yml"
    web_file.write_text(f"basic_auth_users:\n  {USER}: '{S3CRET_HASH}'\n")
    sim = make_sim()
    exporter = make_exporter(sim, web=load_web_config(str(web_file)))
    plain = exporter.url + "/"

    browser.get(plain)
    refused_without_the_page(browser, plain)
    wrong = exporter.url.replace("http://", f"http://{USER}:wrong@") + "/"
    browser.get(wrong)
    refused_without_the_page(browser, wrong)
    assert exporter.live.viewers == 0

    with_credentials = exporter.url.replace("http://", f"http://{USER}:{PASSWORD}@") + "/"
    goes_live(browser, with_credentials)
    assert exporter.live.wait_for_viewers(1, WAIT), "the page's stream is not the one viewer"
    # the same stream from outside the browser, without credentials or with a wrong one
    for auth in (None, (USER, "wrong")):
        with requests.get(
            exporter.url + "/api/live/events", auth=auth, stream=True, timeout=WAIT
        ) as resp:
            assert resp.status_code == 401
            assert resp.headers["WWW-Authenticate"] == 'Basic realm="opta-exporter"'
    assert exporter.live.viewers == 1  # the browser's, still

    # Chromium's auth cache: now the plain URL is let in, and so is its stream; the page
    # just left closed its own (live.js, on pagehide), so there is still one viewer
    goes_live(browser, plain)
    assert exporter.live.wait_for_viewers(1, WAIT)


def test_a_page_left_frees_its_place_and_resumes_when_back(
    make_sim: MakeSim,
    make_exporter: MakeExporter,
    browser: WebDriver,  # noqa: F811
) -> None:
    """Chromium keeps a page left for another whole in its back/forward cache, open
    stream included, for about a minute: that would hold one of the exporter's few
    viewer places (and its 1 s relay reads) for nobody. live.js closes the stream on
    pagehide and reopens it when the page is shown again from the cache."""
    exporter = make_exporter(make_sim())
    browser.get(exporter.url + "/")
    until(browser, lambda d: attribute(d, "view-status", "data-state") == "live", "live")
    assert exporter.live.wait_for_viewers(1, WAIT)
    browser.execute_script("window.notReloaded = true")

    browser.find_element("link text", "Metrics").click()  # the footer's link, as a reader
    until(browser, lambda d: d.current_url.endswith("/metrics"), "on /metrics")
    assert exporter.live.wait_for_viewers(0, WAIT), "the page left still holds its stream"

    browser.back()
    until(browser, lambda d: attribute(d, "view-status", "data-state") == "live", "live again")
    assert browser.execute_script("return window.notReloaded") is True, "not from the cache"
    assert exporter.live.wait_for_viewers(1, WAIT)
    # the /metrics text page has no icon link, so Chromium asks for /favicon.ico there (a
    # 404 in the console): that one line is the text page's, none is the live page's
    severe = [e["message"] for e in log(browser, "browser") if e["level"] == "SEVERE"]
    assert [m for m in severe if "/favicon.ico " not in m] == []


# Installed before any of the page's scripts runs: an EventSource that opens nothing and
# lets the test deliver documents itself, and a MutationObserver on the document's time
# (different in every document the test sends) recording each paint. live.js paints from a
# setTimeout callback, so setTimeout is wrapped to note when each callback's task starts:
# the observer runs once the paint is done, and a paint's own work (the first one builds
# the models table) would otherwise shift its stamp.
FAKE_STREAM = """
(function () {
  var stream = window.fakeStream = { sources: [], paints: [], pushed: 0, pushedAt: [],
                                     observing: false, taskAt: null };
  var setTimeout = window.setTimeout;
  window.setTimeout = function (callback, delay) {
    return setTimeout(function () {
      stream.taskAt = performance.now();
      callback();
    }, delay);
  };
  function FakeEventSource(url) {
    this.url = String(url);
    this.listeners = {};
    this.onerror = null;
    this.closed = false;
    stream.sources.push(this);
  }
  FakeEventSource.prototype.addEventListener = function (name, listener) {
    (this.listeners[name] = this.listeners[name] || []).push(listener);
  };
  FakeEventSource.prototype.close = function () { this.closed = true; };
  FakeEventSource.prototype.deliver = function (name, doc) {
    var event = new MessageEvent(name, { data: JSON.stringify(doc) });
    (this.listeners[name] || []).forEach(function (listener) { listener(event); });
  };
  window.EventSource = FakeEventSource;
  document.addEventListener("DOMContentLoaded", function () {
    var time = document.getElementById("doc-time");
    new MutationObserver(function () {
      stream.paints.push({
        at: performance.now(),
        task: stream.taskAt,
        time: time.textContent,
        requests: document.getElementById("lmx-requests-total").textContent,
        pushed: stream.pushed
      });
    }).observe(time, { childList: true, characterData: true, subtree: true });
    stream.observing = true;
  });
})();
"""

# Delivers arguments[0] (the documents), one every arguments[1] ms from a page timer,
# alternating the stream's two event names; returns at once.
PUSH = """
var docs = arguments[0], stream = window.fakeStream, source = stream.sources[0], i = 0;
var timer = setInterval(function () {
  stream.pushedAt.push(performance.now());
  source.deliver(i % 2 ? "change" : "live", docs[i]);
  stream.pushed = i + 1;
  i += 1;
  if (i === docs.length) clearInterval(timer);
}, arguments[1]);
"""


def document(i: int) -> dict[str, Any]:
    """The i-th document of the burst: a whole one (docs/live-api.md), its time and LMX's
    request count telling it from every other."""
    time = T0 + i
    return {
        "time": time,
        "connection": {"state": "open", "backoff_seconds": 0.0, "last_event": time - 0.5},
        "lmx": {
            "up": True,
            "version": "1.4.0",
            "health": "ok",
            "shedding": False,
            "memory": {
                "used_bytes": 2.1e10,
                "total_bytes": 6.4e10,
                "threshold_ratio": 0.9,
                "usage_ratio": 0.33,
            },
            "requests": {"in_flight": 1, "max_concurrent": 4},
            "relay": {"requests_total": i, "errors_total": 0},
        },
        "models": [
            {
                "model": "mlx-community/Qwen3-8B-4bit",
                "format": "mlx",
                "memory_bytes": 5.1e9,
                "readiness": "routable",
                "crashes": 0,
            }
        ],
        "throughput": {
            "window_seconds": 300,
            "resolution_seconds": 1.0,
            "samples": [[time, 40.0 + i % 7]],
        },
        "sources": {"status": {"up": True, "last_success": time}},
    }


def stamp(unix: float) -> str:
    """The document's time as live.js writes it."""
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%H:%M:%S UTC")


def test_paints_at_most_every_500_ms_and_keeps_the_newest(
    make_sim: MakeSim,
    make_exporter: MakeExporter,
    browser: WebDriver,  # noqa: F811
) -> None:
    """A burst of documents, faster than any server sends them: the page paints at most
    every 500 ms, each paint shows the newest document it had, and the last one pushed is
    the one left on screen. The exporter serves the page and live.js; the stream is the
    test's fake, so the paint rate is live.js's alone."""
    exporter = make_exporter(make_sim())
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FAKE_STREAM})
    browser.get(exporter.url + "/")
    until(
        browser,
        lambda d: d.execute_script(
            "return window.fakeStream.observing && window.fakeStream.sources.length === 1"
        ),
        "live.js on the fake stream, the paints watched",
    )
    source_url = browser.execute_script("return window.fakeStream.sources[0].url")
    assert source_url == "/api/live/events"
    assert browser.execute_script("return window.fakeStream.paints.length") == 0

    docs = [document(i) for i in range(BURST)]
    browser.execute_script(PUSH, docs, EVERY_MS)
    last = stamp(docs[-1]["time"])
    until(
        browser,
        lambda d: (
            d.execute_script("return window.fakeStream.pushed") == BURST
            and text(d, "doc-time") == last
        ),
        "the last document painted",
    )
    stream: dict[str, Any] = browser.execute_script("return window.fakeStream")
    paints: list[dict[str, Any]] = stream["paints"]
    pushed_at: list[float] = stream["pushedAt"]
    assert len(pushed_at) == BURST

    # at most one paint per 500 ms: apart by that, and few for the burst's length
    assert all(0 <= paint["at"] - paint["task"] < PAINT_MS for paint in paints), paints
    gaps = [b["task"] - a["task"] for a, b in itertools.pairwise(paints)]
    assert all(gap >= PAINT_MS - PAINT_SLACK_MS for gap in gaps), (gaps, paints)
    burst_ms = pushed_at[-1] - pushed_at[0]
    assert 2 <= len(paints) <= burst_ms / PAINT_MS + 2, (len(paints), burst_ms)
    # each paint shows the newest document delivered before it (none newer is dropped,
    # no older one shown), its time and its request count alike
    for paint in paints:
        newest = paint["pushed"] - 1
        assert paint["time"] == stamp(docs[newest]["time"]), paint
        assert paint["requests"] == str(newest), paint
    # ... the last one included: what is on screen is the last document pushed
    assert paints[-1]["pushed"] == BURST
    assert text(browser, "doc-time") == last
    assert text(browser, "lmx-requests-total") == str(BURST - 1)
    assert attribute(browser, "view-status", "data-state") == "live"

    # the page never opened the real stream, and nothing went wrong on it
    urls = requested(browser)
    assert not any(u.endswith("/api/live/events") for u in urls), urls
    assert [e for e in log(browser, "browser") if e["level"] == "SEVERE"] == []


class _TextById(HTMLParser):
    """Each element's text content by id, and each polyline's points (by data-model, or
    id), from the server's markup."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, str | None]] = []
        self.text: dict[str, str] = {}
        self.lines: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "polyline":
            self.lines[found.get("data-model") or found.get("id") or ""] = found["points"] or ""
        if found.get("id"):
            self.text.setdefault(str(found["id"]), "")
        if tag not in self.VOID and tag != "polyline":  # neither has an end tag here
            self.open.append((tag, found.get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for _, element_id in self.open:
            if element_id:
                self.text[element_id] += data


def test_live_js_paints_a_document_as_the_server_renders_it(
    make_sim: MakeSim,
    make_exporter: MakeExporter,
    browser: WebDriver,  # noqa: F811
) -> None:
    """One document, painted by live.js and rendered by page.py: every element with an id
    has the same text, and every chart line the same points (the per-model lines, the
    legend and its count of lines not drawn included). Only what is live.js's alone may
    differ: the page's own connection state and the rates it takes from two documents."""
    exporter = make_exporter(make_sim())
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FAKE_STREAM})
    browser.get(exporter.url + "/")
    until(browser, lambda d: d.execute_script("return window.fakeStream.observing"), "ready")
    doc = document(7)
    doc["connection"]["last_error"] = "http_error: HTTP 503 <b>"
    doc["connection"]["last_error_time"] = T0 - 100.5
    odd = 'odd/<b>&"quoted"</b>.gguf'
    doc["models"].append(
        {"model": odd, "format": "gguf", "memory_bytes": 7.9e9, "readiness": "loading",
         "crashes": 2}
    )  # fmt: skip
    doc["throughput"] = {
        "window_seconds": 300,
        "resolution_seconds": 1.0,
        "samples": [[T0 + 7 - 3 + k, 30.0 + 11 * k] for k in range(4)],
        "models": {
            odd: [[T0 + 7 - 2, 5.0], [T0 + 7, 12.5]],
            "mlx-community/Qwen3-8B-4bit": [[T0 + 7 - 3 + k, 25.0 + 9 * k] for k in range(4)],
            "z/idle": [[T0 + 7, 0.0]],
        },
        "models_with_samples": 9,
    }
    browser.execute_script(PUSH, [doc], 1)
    until(browser, lambda d: text(d, "doc-time") == stamp(doc["time"]), "painted")

    server = _TextById()
    server.feed(render(doc, version="v", lmx_url="u", telemetry_path="/metrics"))
    painted: dict[str, str] = dict(
        browser.execute_script(
            "return [...document.querySelectorAll('[id]')].map(e => [e.id, e.textContent])"
        )
    )
    lines: dict[str, str] = dict(
        browser.execute_script(
            "return [...document.querySelectorAll('#chart polyline')].map(p =>"
            " [p.getAttribute('data-model') || p.id, p.getAttribute('points')])"
        )
    )
    own = {"view-status", "view-state", "lmx-request-rate", "lmx-error-rate"}
    assert set(painted) == set(server.text)
    differ = {
        i: (painted[i], server.text[i])
        for i in painted
        if i not in own and " ".join(painted[i].split()) != " ".join(server.text[i].split())
    }
    assert differ == {}
    assert lines == server.lines
    assert set(lines) == {"chart-line", odd, "mlx-community/Qwen3-8B-4bit", "z/idle"}
    assert "and 6 more, not drawn" in painted["chart-legend"]
    assert browser.execute_script("return document.querySelectorAll('#chart-legend b').length") == 0


# Installed before live.js: an EventSource the test fails at will, Math.random pinned by
# the test, and live.js's retry timer (the one setTimeout whose callback is `connect`)
# recorded and fired at once, so the whole backoff runs in no time. Every text of the
# page's own status line is recorded too.
RETRY_RIG = """
(function () {
  var rig = window.retryRig = { sources: [], delays: [], texts: [], random: 1 };
  Math.random = function () { return rig.random; };
  var setTimeout = window.setTimeout;
  window.setTimeout = function (callback, delay) {
    if (callback && callback.name === "connect") {
      rig.delays.push(delay);
      return setTimeout(callback, 0);
    }
    return setTimeout(callback, delay);
  };
  function FakeEventSource(url) {
    this.url = String(url);
    this.listeners = {};
    this.onerror = null;
    rig.sources.push(this);
  }
  FakeEventSource.prototype.addEventListener = function (name, listener) {
    (this.listeners[name] = this.listeners[name] || []).push(listener);
  };
  FakeEventSource.prototype.close = function () { this.closed = true; };
  window.EventSource = FakeEventSource;
  document.addEventListener("DOMContentLoaded", function () {
    var state = document.getElementById("view-state");
    new MutationObserver(function () { rig.texts.push(state.textContent); })
      .observe(state, { childList: true, characterData: true, subtree: true });
  });
})();
"""


def test_the_page_reconnects_with_jittered_backoff_capped_at_30_s(
    make_sim: MakeSim,
    make_exporter: MakeExporter,
    browser: WebDriver,  # noqa: F811
) -> None:
    """The original design's rule: after the n-th failure in a row the page waits a time
    drawn from [d/2, d], d = 1 s * 2^(n-1) capped at 30 s, says "reconnecting in N s",
    and a stream that delivers a document resets n. The stream is the test's fake and
    the retry timer fires at once, so eight failures take no time."""
    exporter = make_exporter(make_sim())
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RETRY_RIG})
    browser.get(exporter.url + "/")

    def sources(d: WebDriver) -> int:
        return int(d.execute_script("return window.retryRig.sources.length"))

    def fail(d: WebDriver) -> None:
        before = sources(d)
        d.execute_script("var s = window.retryRig.sources; s[s.length - 1].onerror()")
        until(d, lambda d: sources(d) == before + 1, "the next attempt")

    until(browser, lambda d: sources(d) == 1, "the first attempt")
    for _ in range(8):
        fail(browser)
    rig: dict[str, Any] = browser.execute_script("return window.retryRig")
    assert rig["delays"] == [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    shown = [t for t in rig["texts"] if t.startswith("disconnected")]
    assert shown == [
        f"disconnected from the exporter, reconnecting in {s} s"
        for s in (1, 2, 4, 8, 16, 30, 30, 30)
    ]
    # a stream that delivers resets the count; the draw is anywhere in [d/2, d]
    browser.execute_script(
        "var s = window.retryRig.sources; s[s.length - 1].listeners.live[0]("
        "new MessageEvent('live', {data: JSON.stringify(arguments[0])}))",
        document(0),
    )
    until(browser, lambda d: attribute(d, "view-status", "data-state") == "live", "live")
    browser.execute_script("window.retryRig.random = 0")
    fail(browser)
    fail(browser)
    assert browser.execute_script("return window.retryRig.delays.slice(8)") == [500, 1000]
    assert [e for e in log(browser, "browser") if e["level"] == "SEVERE"] == []
