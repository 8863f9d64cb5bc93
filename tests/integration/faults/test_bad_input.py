"""The fault matrix: one test per thing a network, a restarting LMX or a proxy does; each ends
in "the stream goes on" or "a reconnect with backoff, for the right reason", and
`Rig.check()` then proves the invariants (thread alive, no spinning, counters monotonic,
up only after a resync, the admin key nowhere).

Here: bad input, counted and never fatal -- empty data, invalid UTF-8, a 10 MB event,
NaN and infinite numbers, odd label values, lone surrogates.
"""

from __future__ import annotations

import math
import tracemalloc

import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from opta_exporter.core.labels import MAX_LABEL_CHARS
from tests.conftest import WAIT
from tests.helpers import parse, promtool_check
from tests.integration.faults.faulty_lmx import FaultyLmx
from tests.integration.faults.faulty_script import Big, Hold, Raw, events_script
from tests.integration.faults.steps import MB, MakeRig, beat, load


# -- bad input: counted, never fatal ------------------------------------------------------
def test_empty_data_is_malformed_not_fatal(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    empty = Raw(b"event: model_loaded\ndata:\n\n")
    lmx.push(events_script(empty, Raw(b"event: model_loaded\ndata\n\n"), load("ok"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "ok" in s.loaded, "the good event")
    assert rig.value("opta_exporter_event_errors_total", reason="malformed_json") == 2.0
    assert sum(rig.health.reconnects.values()) == 0
    rig.check()


def test_invalid_utf8_is_counted_not_fatal(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    bad_data = Raw(b'event: model_loaded\ndata: {"model_id": "\xff\xfe"}\n\n')
    bad_name = Raw(b'event: \xff\xfeloaded\ndata: {"model_id": "x"}\n\n')
    lmx.push(events_script(bad_data, bad_name, load("ok"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "ok" in s.loaded, "the good event")
    assert rig.value("opta_exporter_event_errors_total", reason="malformed_json") == 1.0
    assert rig.value("opta_lmx_events_total", event="other") == 1.0  # the mangled name
    assert set(rig.state.loaded) == {"keep", "ok"}
    rig.check()


def test_10mb_event_line_is_dropped_and_the_stream_resyncs(
    lmx: FaultyLmx, make_rig: MakeRig
) -> None:
    lmx.push(events_script(Hold(), Big(10 * MB), load("after"), Hold()))
    rig = make_rig()
    rig.wait_open()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        lmx.release()
        rig.wait(lambda s, h: "after" in s.loaded, "the event after the big one")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MB, f"held {peak / MB:.1f} MiB for one event"
    assert rig.value("opta_exporter_event_errors_total", reason="oversize") == 1.0
    assert sum(rig.health.reconnects.values()) == 0  # resynced at the boundary
    assert rig.state.events == {"model_loaded": 1.0}
    rig.check()


def test_nan_inf_and_negative_durations_are_refused(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    values = [b"NaN", b"Infinity", b"-Infinity", b"-1.5", b"1e999"]
    frames = [
        Raw(b'event: model_loaded\ndata: {"model_id": "d%d", "duration_sec": %s}\n\n' % (i, v))
        for i, v in enumerate(values)
    ]
    canary = b'event: model_canary_passed\ndata: {"model_id": "k", "duration_sec": NaN}\n\n'
    lmx.push(events_script(*frames, Raw(canary), load("ok"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "ok" in s.loaded, "the good event")
    samples = rig.scrape()
    assert samples[("opta_exporter_event_errors_total", (("reason", "bad_field"),))] == 6.0
    hist = {k: v for k, v in samples.items() if "_seconds_" in k[0] and k[0].startswith("opta_")}
    assert all(0.0 <= v < math.inf for v in hist.values()), hist  # NaN fails this too
    assert set(rig.state.loaded) == {"keep", "ok"}  # a refused event changes nothing
    rig.check()


ODD_IDS = [
    'we"ird',
    "back\\slash",
    "new\nline",
    "emoji-\U0001f980-\u00e9",
    'all "of\\ them\n\U0001f680',
    "x" * MAX_LABEL_CHARS,  # the longest id admitted
]


def test_odd_label_values_are_escaped_or_refused(lmx: FaultyLmx, make_rig: MakeRig) -> None:
    huge = "y" * 10_000
    lmx.push(events_script(*[load(m) for m in [*ODD_IDS, huge]], beat(), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: s.events.get("heartbeat") == 1, "all events")
    rig.scrape()
    text = rig.texts[-1]
    models = {
        dict(labels)["model"]
        for (name, labels), _ in parse(text).items()
        if name == "opta_lmx_model_loaded"
    }
    assert models == {"keep", *ODD_IDS}  # round-trips through the parser: escaped right
    assert huge not in text
    dropped = rig.value("opta_exporter_series_dropped_total", metric="opta_lmx_model_loaded")
    assert dropped == 1.0
    promtool_check(text)
    openmetrics = requests.get(
        rig.exporter.url + "/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        timeout=WAIT,
    ).text
    loaded = {
        sample.labels["model"]
        for family in om_parse(openmetrics)  # type: ignore[no-untyped-call]
        if family.name == "opta_lmx_model_loaded"
        for sample in family.samples
    }
    assert loaded == models  # the format Prometheus negotiates escapes the same way
    rig.check()


def test_lone_surrogate_in_a_label_does_not_break_the_scrape(
    lmx: FaultyLmx, make_rig: MakeRig
) -> None:
    surrogate = Raw(b'event: model_loaded\ndata: {"model_id": "a\\ud800b"}\n\n')
    lmx.push(events_script(surrogate, load("ok"), Hold()))
    rig = make_rig()
    rig.wait(lambda s, h: "ok" in s.loaded, "the good event")
    assert rig.value("opta_exporter_event_errors_total", reason="bad_field") == 1.0


def test_lone_surrogate_in_a_snapshot_does_not_break_the_scrape(
    lmx: FaultyLmx, make_rig: MakeRig
) -> None:
    lmx.set_models({"keep": 1.0, "a\ud800b": 1.0})
    rig = make_rig()
    rig.wait_open()
    rig.check()
