"""The live page in a real browser: headless Chromium (selenium) against the exporter and
the simulator on loopback. The page shows the simulator's state, its chart grows, an LMX
outage shows as a countdown and heals without a reload, the console stays clean, and no
request leaves the exporter's origin.

Skipped where chromium or chromedriver is missing, except in CI (CI=true), where .ci/run
installs them and their absence is a failure."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lmx_simulator import LmxSimulator
from opta_exporter.core.health import RECONNECT_REASONS
from opta_exporter.daemon import Exporter
from tests.conftest import is_open, wait_for
from tests.integration.test_sources import FAST

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.chrome.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

MakeExporter = Callable[..., Exporter]
MakeSim = Callable[..., LmxSimulator]
DEADLINE = 20.0  # upper bound for anything the page has to show
MAIN = "mlx-community/Qwen3-8B-4bit"
ODD = 'odd/<b>&"quoted"</b>.gguf'  # markup in an id: text on the page, never markup


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"`{names[0]}` is missing in CI: .ci/run installs Debian's `chromium`")
    pytest.skip(f"`{names[0]}` is not installed (Debian `chromium chromium-driver`); CI runs this")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium = binary("chromium", "chromium-browser", "google-chrome")
    driver_path = binary("chromedriver")
    options = Options()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=420,1400",  # phone width
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.set_page_load_timeout(DEADLINE)
        yield driver
    finally:
        driver.quit()


def until(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    return WebDriverWait(driver, DEADLINE, poll_frequency=0.1).until(condition, what)


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.execute_script(f"return document.getElementById('{element_id}').textContent"))


def attribute(driver: WebDriver, element_id: str, name: str) -> str:
    return str(
        driver.execute_script(
            f"return document.getElementById('{element_id}').getAttribute('{name}')"
        )
    )


def log(driver: WebDriver, kind: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def requested(driver: WebDriver) -> list[str]:
    """Every URL the page asked for, from the performance log."""
    urls = []
    for entry in log(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_live_page_follows_lmx(
    make_sim: MakeSim, make_exporter: MakeExporter, browser: WebDriver
) -> None:
    sim = make_sim()
    sim.load_model(MAIN, duration_sec=0.1)
    sim.load_model(ODD, fmt="gguf", duration_sec=0.1)
    # an outage waits 1 s, then 2 s: long enough to see counted down, short for a test
    exporter = make_exporter(sim, backoff_base=1.0, backoff_cap=2.0, **FAST)
    wait_for(exporter, is_open)
    wait_for(exporter, lambda state, health: {MAIN, ODD} <= state.loaded.keys())

    browser.get(exporter.url + "/")
    until(browser, lambda d: attribute(d, "view-status", "data-state") == "live", "live")
    until(browser, lambda d: ODD in text(d, "models") and MAIN in text(d, "models"), "models")
    assert "routable" in text(browser, "models")
    assert browser.execute_script("return document.querySelectorAll('#models b').length") == 0
    assert text(browser, "conn-state") == "open"
    assert text(browser, "last-error") == "never lost"
    assert text(browser, "lmx-up") == "yes"

    # the chart gains points as the relay is read (a second while someone watches)
    start = int(attribute(browser, "chart", "data-count"))
    sim.record_request(MAIN, completion_tokens=500)
    until(browser, lambda d: int(attribute(d, "chart", "data-count")) >= start + 2, "points")
    # at the resolution it has: the relay's 0.1 s here, as it is faster than the 1 s a
    # viewer asks for
    assert text(browser, "tps-resolution") == f"{FAST['relay_interval']:g} s"
    # ... and MAIN has its own line: LMX counts its tokens; ODD served none, so has none
    until(browser, lambda d: MAIN in text(d, "chart-legend"), "MAIN's line")
    assert ODD not in text(browser, "chart-legend")
    line = browser.execute_script(
        "return [...document.querySelectorAll('#chart-models polyline')]"
        ".map(p => [p.getAttribute('data-model'), p.getAttribute('points')])"
    )
    assert [model for model, _ in line] == [MAIN]
    assert line[0][1]
    # the request rate, from two of the relay's totals a few seconds apart
    until(browser, lambda d: text(d, "lmx-request-rate") != "\u2014", "a request rate")
    assert float(text(browser, "lmx-request-rate")) >= 0

    # LMX goes away: the page says so and counts down to the exporter's next attempt
    sim.stop()
    until(browser, lambda d: "retrying LMX in" in text(d, "conn-state"), "countdown")
    assert attribute(browser, "connection", "data-state") in ("backoff", "connecting")
    # ... and why: the stream LMX's stop ended (its reason a reconnects_total label)
    lost = text(browser, "last-error")
    assert lost.startswith("last lost at "), lost
    assert lost.split(": ")[1] in RECONNECT_REASONS, lost
    assert text(browser, "lmx-up") == "no"
    # ... and comes back on the same port: the page heals without a reload
    browser.execute_script("window.notReloaded = true")
    sim.start()
    until(browser, lambda d: text(d, "conn-state") == "open", "reconnected")
    assert browser.execute_script("return window.notReloaded") is True
    until(browser, lambda d: MAIN in text(d, "models"), "models after the outage")

    errors = [e for e in log(browser, "browser") if e["level"] == "SEVERE"]
    assert errors == []
    urls = requested(browser)
    assert urls, "the performance log saw no request"
    foreign = [u for u in urls if not u.startswith(exporter.url + "/") and u != "data:,"]
    assert foreign == []
    assert any(u.endswith("/api/live/events") for u in urls)


def test_page_reconnects_to_the_exporter_with_a_countdown(
    make_sim: MakeSim, make_exporter: MakeExporter, browser: WebDriver
) -> None:
    sim = make_sim()
    exporter = make_exporter(sim, **FAST)
    wait_for(exporter, is_open)
    port = exporter.server.port
    browser.get(exporter.url + "/")
    until(browser, lambda d: attribute(d, "view-status", "data-state") == "live", "live")
    browser.execute_script("window.notReloaded = true")
    exporter.stop()  # ends the page's stream: live.js waits, saying how long, and retries
    until(
        browser,
        lambda d: (
            attribute(d, "view-status", "data-state") == "reconnecting"
            and "reconnecting in" in text(d, "view-state")
        ),
        "the page's own countdown",
    )
    wait = int(text(browser, "view-state").rsplit(" in ", 1)[1].split()[0])
    assert 0 <= wait <= 30
    # an exporter on the same address again: the page finds it by itself, no reload
    again = make_exporter(sim, listen_port=port, **FAST)
    wait_for(again, is_open)
    until(browser, lambda d: attribute(d, "view-status", "data-state") == "live", "live again")
    assert browser.execute_script("return window.notReloaded") is True


def test_phone_width_and_dark_scheme(
    make_sim: MakeSim, make_exporter: MakeExporter, browser: WebDriver
) -> None:
    sim = make_sim()
    sim.load_model("mlx-community/" + "a-very-long-model-id-" * 4 + "4bit", duration_sec=0.1)
    exporter = make_exporter(sim, **FAST)
    wait_for(exporter, is_open)
    background = "return getComputedStyle(document.body).backgroundColor"
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "light"}]},
    )
    browser.get(exporter.url + "/")
    until(browser, lambda d: "a-very-long" in text(d, "models"), "models")
    light = browser.execute_script(background)
    # nothing wider than a phone's screen (420 px): no sideways scrolling of the page
    overflow = "return document.documentElement.scrollWidth - window.innerWidth"
    assert browser.execute_script(overflow) <= 0
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    until(browser, lambda d: d.execute_script(background) != light, "dark scheme")
