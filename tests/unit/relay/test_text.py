"""RelayText (relay/text.py): the relayed families as /metrics serves them, byte for byte
what the client library writes."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from opta_exporter.relay import text
from opta_exporter.relay.families import relay_metrics
from opta_exporter.relay.reader import RelayView
from opta_exporter.relay.text import RelayText
from tests.relay_bodies import WEIRD_ESCAPED, StaticSource, fresh_view, registry_for


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_served_relay_text_is_the_library_text(openmetrics: bool) -> None:
    """/metrics writes the relayed families itself (relay/text.py's write): byte for byte what
    the library writes from the same families, odd ids, NaN, summaries and untyped too."""
    source = StaticSource(fresh_view())
    registry = registry_for(source)
    if openmetrics:
        raw: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
        expected = raw.decode().removesuffix("# EOF\n")
    else:
        expected = generate_latest(registry).decode()
    assert "lmx_draft_ratio_sum" in expected
    assert WEIRD_ESCAPED in expected
    assert RelayText(source).render(openmetrics).decode() == expected


def test_refresh_writes_ahead_only_the_formats_scrapes_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a read the reader's thread writes the text, so the next scrape only copies."""
    source = StaticSource(fresh_view())
    relay = RelayText(source)
    relay.render(True)  # a scrape asked for OpenMetrics; text format never
    written: list[bool] = []
    real = text.write

    def spy(metrics: Iterable[Metric], openmetrics: bool) -> bytes:
        written.append(openmetrics)
        return real(metrics, openmetrics)

    monkeypatch.setattr(text, "write", spy)
    first = source.current
    source.current = RelayView(first.families, 2.0, {"success": 2, "failure": 0})  # a read
    relay.refresh()
    assert written == [True]
    served = relay.render(True)
    assert written == [True]  # the scrape wrote nothing
    assert served == real(relay_metrics(source.current), True)
    assert b'opta_exporter_relay_reads_total{outcome="success"} 2.0' in served
