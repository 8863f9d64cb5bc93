"""The relay's per-read caps (issue 17): at most MAX_SERIES samples and MAX_BYTES of
body per read. A 300k-series body (6.8 MB) was relayed whole: /metrics 6.8 MB, 391 MB
RSS. Past the caps, samples are counted by reason and the change is logged once."""

from __future__ import annotations

import pytest
import requests
import responses

from opta_exporter.config import Config
from opta_exporter.relay.parse import MAX_SERIES, parse_lmx_metrics
from opta_exporter.relay.reader import MAX_BYTES, RelayReader
from tests.fakes import FakeClock
from tests.helpers import LMX, promtool_check
from tests.relay_bodies import KEY, exposition, registry_for

HEAD = "# HELP lmx_x_total Series.\n# TYPE lmx_x_total counter\n"
FLOOD = HEAD + "".join(f'lmx_x_total{{i="{i}"}} 1\n' for i in range(300_000))
HIST = "# HELP lmx_latency_seconds Latency.\n# TYPE lmx_latency_seconds histogram\n" + "".join(
    f'lmx_latency_seconds_bucket{{route="{r}",le="{le}"}} 1\n'
    + ("" if le != "+Inf" else f'lmx_latency_seconds_sum{{route="{r}"}} 1\n')
    for r in range(5_000)
    for le in ("0.1", "+Inf")
)


def reader() -> RelayReader:
    config = Config(lmx_url=LMX, admin_key=KEY, relay_interval=15.0)
    return RelayReader(config, requests.Session(), FakeClock())


def test_the_body_is_cut_at_the_series_cap_and_the_rest_counted() -> None:
    parse = parse_lmx_metrics(FLOOD)
    assert parse.sample_count == MAX_SERIES
    assert parse.capped == 300_000 - MAX_SERIES
    assert parse.dropped == 0


def test_a_histogram_series_the_cut_leaves_incomplete_is_dropped_as_cut() -> None:
    parse = parse_lmx_metrics(HIST, max_series=1_001)  # mid-series: a bucket, no +Inf
    family = parse.families["lmx_latency_seconds"]
    assert len(family.samples) == 999  # 333 whole series of three samples
    assert parse.capped == 15_000 - 999
    assert parse.dropped == 0


def test_a_body_under_the_cap_is_untouched() -> None:
    body = HEAD + "".join(f'lmx_x_total{{i="{i}"}} 1\n' for i in range(MAX_SERIES))
    parse = parse_lmx_metrics(body)
    assert (parse.sample_count, parse.capped) == (MAX_SERIES, 0)


def test_a_flood_is_relayed_capped_valid_counted_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = reader()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=FLOOD, status=200)
        assert relay.read_once()
        assert relay.read_once()
    view = relay.view()
    assert sum(len(f.samples) for f in view.families.values()) == MAX_SERIES
    assert view.dropped["series_cap"] == 2 * (300_000 - MAX_SERIES)
    said = [r for r in caplog.records if "series cap" in r.getMessage()]
    assert len(said) == 1
    text = exposition(registry_for(relay))
    assert len(text) < 600_000  # the flood's 6.8 MB, as the capped 10,000 series
    assert 'opta_exporter_relay_samples_dropped_total{reason="series_cap"} 580000.0' in text
    promtool_check(text)


def test_a_body_over_the_byte_cap_is_refused_counted_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = reader()
    big = HEAD + "lmx_x_total 1\n" + "# " + "x" * MAX_BYTES + "\n"
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, LMX + "/admin/metrics", body=big, status=200)
        assert not relay.read_once()
        assert not relay.read_once()
    view = relay.view()
    assert view.reads == {"success": 0, "failure": 2}
    assert view.dropped["too_large"] == 2
    said = [r for r in caplog.records if "cap of" in r.getMessage()]
    assert len(said) == 1
    assert str(MAX_BYTES) in said[0].getMessage()
    text = exposition(registry_for(relay))
    assert 'opta_exporter_relay_samples_dropped_total{reason="too_large"} 2.0' in text
