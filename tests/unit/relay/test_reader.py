"""RelayReader (relay/reader.py) with `responses` and a fake clock: the key in the header,
failed reads counted and logged once, staleness after three intervals, the sticky model
cap, a run that survives a bug."""

from __future__ import annotations

import logging
import threading

import pytest
import requests
import responses

from opta_exporter.config import Config
from opta_exporter.core.throughput import TokenCount
from opta_exporter.relay.reader import LIVE_INTERVAL, RelayReader
from tests.fakes import FakeClock
from tests.helpers import LMX, promtool_check
from tests.relay_bodies import (
    COUNTER,
    HIST,
    KEY,
    LMX_BODY,
    exposition,
    names,
    registry_for,
    tokens_body,
)


def make_reader(
    clock: FakeClock | None = None, key: str | None = KEY, max_models: int = 100
) -> RelayReader:
    config = Config(lmx_url=LMX, admin_key=key, relay_interval=15.0, max_models=max_models)
    return RelayReader(config, requests.Session(), clock or FakeClock())


def tokens_reader(clock: FakeClock, got: list[TokenCount], max_models: int = 100) -> RelayReader:
    """A reader that reports each read's token counter into `got`, and each outcome too."""
    config = Config(lmx_url=LMX, admin_key=KEY, relay_interval=15.0, max_models=max_models)
    return RelayReader(config, requests.Session(), clock, on_tokens=got.append)


def test_read_sends_the_key_in_the_header_and_keeps_the_parse() -> None:
    reader = make_reader()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=LMX_BODY, status=200)
        assert reader.read_once()
        sent = rsps.calls[0].request
    assert sent.headers["X-Admin-Key"] == KEY
    assert sent.url == LMX + "/admin/metrics"  # never the query form
    view = reader.view()
    assert view.reads == {"success": 1, "failure": 0}
    assert view.repaired == 6
    assert view.last_success_wall == 1_700_000_000.0
    assert "lmx_model_requests_total" in view.families


def test_no_key_configured_sends_no_header() -> None:
    reader = make_reader(key=None)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body="")
        assert reader.read_once()  # an empty body is a valid empty read
        assert "X-Admin-Key" not in rsps.calls[0].request.headers


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (403, '{"detail": "Invalid or missing admin key"}', "HTTP 403, admin key refused"),
        (401, "", "HTTP 401, admin key refused"),
        (503, "", "HTTP 503"),
        (200, requests.ConnectTimeout("to " + LMX), "timed out"),
        (
            200,
            requests.ConnectionError("refused " + LMX),
            "cannot connect or read (ConnectionError)",
        ),
        (200, "<html>\n<body>Sign in</body>\n</html>\n", "3 unreadable line(s)"),
    ],
)
def test_failed_reads_count_and_log_once_without_the_key(
    caplog: pytest.LogCaptureFixture, status: int, body: str | Exception, reason: str
) -> None:
    caplog.set_level(logging.DEBUG)
    reader = make_reader()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=body, status=status)
        assert not reader.read_once()
        assert not reader.read_once()
    view = reader.view()
    assert view.reads == {"success": 0, "failure": 2}
    assert view.families == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert reason in warnings[0]
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert record.exc_info is None or KEY not in str(record.exc_info[1])


def test_a_failure_keeps_the_last_good_read_and_recovery_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    reader = make_reader(clock)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=LMX_BODY)
        rsps.add(responses.GET, LMX + "/admin/metrics", status=500)
        rsps.add(responses.GET, LMX + "/admin/metrics", body=LMX_BODY)
        assert reader.read_once()
        clock.advance(15)
        assert not reader.read_once()
        assert "lmx_requests_total" in reader.view().families  # not yet stale
        assert reader.read_once()
    assert reader.view().last_success_wall == clock.wall
    assert [r.getMessage() for r in caplog.records] == [
        "relay: reading LMX's /admin/metrics failed: HTTP 500",
        "relay: reading LMX's /admin/metrics works again",
    ]


def test_relayed_families_hide_after_three_intervals() -> None:
    clock = FakeClock()
    reader = make_reader(clock)
    registry = registry_for(reader)
    assert not any(n.startswith("lmx_") for n in names(registry))  # never read yet
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=LMX_BODY)
        rsps.add(responses.GET, LMX + "/admin/metrics", status=403)
        reader.read_once()
        read_at = clock.wall
        assert registry.get_sample_value("lmx_requests_total") == 7
        clock.advance(15)
        reader.read_once()
    clock.advance(15)  # exactly 2 intervals: still shown
    assert registry.get_sample_value("lmx_requests_total") == 7
    clock.advance(0.001)
    assert not any(n.startswith("lmx_") for n in names(registry))
    got = registry.get_sample_value
    assert got("opta_exporter_relay_reads_total", {"outcome": "failure"}) == 1
    assert got("opta_exporter_relay_last_success_timestamp_seconds") == read_at


def test_model_cap_is_applied_sticky_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    long_id = "m" * 257

    def body(models: list[str]) -> str:
        lines = [COUNTER, *(f'lmx_model_requests_total{{model="{x}"}} 1' for x in models)]
        lines += [f"# TYPE {HIST} histogram"]
        for x in models:
            lines += [f'{HIST}_bucket{{model="{x}",le="+Inf"}} 1', f'{HIST}_sum{{model="{x}"}} 1']
        return "\n".join(lines) + "\n"

    reader = make_reader(max_models=2)
    registry = registry_for(reader)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=body(["a", "b", "c", long_id]))
        rsps.add(responses.GET, LMX + "/admin/metrics", body=body(["c", "b", "a"]))
        reader.read_once()
        got = registry.get_sample_value
        assert got("opta_exporter_relay_samples_dropped_total", {"reason": "cap"}) == 6
        reader.read_once()  # a new order must not swap which models are shown
    assert got("opta_exporter_relay_samples_dropped_total", {"reason": "cap"}) == 9
    shown = {
        s.labels["model"] for f in registry.collect() for s in f.samples if "model" in s.labels
    }
    assert shown == {"a", "b"}
    assert sum("model cap" in r.getMessage() for r in caplog.records) == 2
    promtool_check(exposition(registry))


def test_run_reads_until_stopped_and_survives_a_bug(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()

    class Broken(requests.Session):
        def get(self, *args: object, **kwargs: object) -> requests.Response:
            stop.set()
            raise RuntimeError("bug")

    reader = RelayReader(Config(lmx_url=LMX), Broken(), FakeClock())
    reader.run(stop)  # returns: the stop was set during the read
    assert "unexpected error" in caplog.text
    reader.run(stop)  # an already set stop returns without reading


# -- the throughput window's source ---------------------------------------------------------
def test_each_good_read_with_the_counter_hands_on_its_tokens_and_uptime() -> None:
    clock = FakeClock(wall=1_700_000_000.0, mono=500.0)
    got: list[TokenCount] = []
    reader = tokens_reader(clock, got)
    with responses.RequestsMock() as rsps:
        for body in (tokens_body("1200", "37.2"), LMX_BODY, tokens_body("1500")):
            rsps.add(responses.GET, LMX + "/admin/metrics", body=body)
        rsps.add(responses.GET, LMX + "/admin/metrics", status=500)
        rsps.add(responses.GET, LMX + "/admin/metrics", body="<html>Sign in</html>\n")
        rsps.add(responses.GET, LMX + "/admin/metrics", body=tokens_body("1800", "82.2"))
        assert reader.read_once()  # counter and uptime
        assert got == [TokenCount(500.0, 1_700_000_000.0, 1200.0, 37.2)]
        clock.advance(15)
        assert reader.read_once()  # a good read without the counter: nothing
        assert len(got) == 1
        clock.advance(15)
        assert reader.read_once()  # the counter alone: no uptime
        assert got[1:] == [TokenCount(530.0, 1_700_000_030.0, 1500.0, None)]
        clock.advance(15)
        assert not reader.read_once()  # failed reads hand on nothing
        assert not reader.read_once()
        assert len(got) == 2
        clock.advance(15)
        assert reader.read_once()
    assert got[2:] == [TokenCount(560.0, 1_700_000_060.0, 1800.0, 82.2)]
    assert reader.view().reads == {"success": 4, "failure": 2}


def test_the_token_callback_comes_after_the_read_is_kept_and_reported() -> None:
    """Whoever is told of the tokens sees the read as done: its families kept, its count
    taken, and the source `relay` already reported good."""
    clock = FakeClock()
    log: list[object] = []
    config = Config(lmx_url=LMX, admin_key=KEY, relay_interval=15.0)
    reader = RelayReader(
        config,
        requests.Session(),
        clock,
        report=lambda source, ok: log.append((source, ok)),
        on_tokens=lambda count: log.append(
            (
                count.completion_tokens,
                reader.view().reads,
                "lmx_completion_tokens_total" in reader.view().families,
            )
        ),
    )
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=tokens_body("7", "1"))
        assert reader.read_once()
    assert log == [("relay", True), (7.0, {"success": 1, "failure": 0}, True)]


def test_the_model_cap_does_not_hide_the_token_counter() -> None:
    """The cap acts on model labels; the total has none, so even a full cap passes it."""
    clock = FakeClock()
    got: list[TokenCount] = []
    reader = tokens_reader(clock, got, max_models=1)
    body = tokens_body("4096", "12") + "\n".join(
        [COUNTER, *(f'lmx_model_requests_total{{model="m{i}"}} 1' for i in range(3))]
    )
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=body)
        assert reader.read_once()
    assert [(c.completion_tokens, c.uptime) for c in got] == [(4096.0, 12.0)]


# -- the live view's cadence ----------------------------------------------------------------
def test_watched_it_reads_a_second_unless_its_interval_is_shorter() -> None:
    slow = RelayReader(Config(lmx_url=LMX, relay_interval=15.0), requests.Session())
    fast = RelayReader(Config(lmx_url=LMX, relay_interval=0.5), requests.Session())
    for reader in (slow, fast):
        reader.watch(True)
    assert slow.interval() == LIVE_INTERVAL
    assert fast.interval() == 0.5
    slow.watch(False)
    assert slow.interval() == 15.0


def test_a_new_cadence_or_a_stop_ends_the_wait_between_reads() -> None:
    """A viewer's first read comes at once, and a stop does not wait out the interval."""
    stop = threading.Event()
    reader = RelayReader(Config(lmx_url=LMX, relay_interval=3600.0), requests.Session())
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", status=500)
        thread = threading.Thread(target=reader.run, args=(stop,), daemon=True)
        thread.start()
        assert reader.wait_for_reads(1, 5.0)
        reader.watch(True)
        assert reader.wait_for_reads(2, 5.0)  # not an hour later
        stop.set()
        reader.wake()
        thread.join(5.0)
        assert not thread.is_alive()
