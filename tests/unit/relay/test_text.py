"""RelayText (relay/text.py): the relayed families as /metrics serves them, byte for byte
what the client library writes."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from opta_exporter.relay.text import RelayText
from tests.relay_bodies import WEIRD_ESCAPED, StaticSource, fresh_view, registry_for


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_served_relay_text_is_the_library_text(openmetrics: bool) -> None:
    """/metrics writes the relayed families itself (relay_text.write): byte for byte what
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
