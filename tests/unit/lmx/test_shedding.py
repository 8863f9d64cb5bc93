"""SheddingWatch (lmx/shedding.py): a spell begins at a 503 `overloaded` and ends at a
200 from a route LMX would shed; logged once at each end."""

from __future__ import annotations

import logging

import pytest

from opta_exporter.lmx.shedding import EXEMPT_PATHS, SheddingWatch


def test_a_spell_begins_and_ends_once_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    reported: list[bool] = []
    watch = SheddingWatch(reported.append)
    watch.answered("/admin/status", 200, False)  # calm: nothing to say
    for path in ("/admin/status", "/admin/memory", "/admin/events", "/admin/metrics"):
        watch.answered(path, 503, True)
    watch.answered("/admin/health", 200, False)  # exempt: LMX answers it while shedding
    watch.answered("/admin/status", 500, False)  # another fault: says nothing of shedding
    assert reported == [True]
    watch.answered("/admin/metrics", 200, False)
    watch.answered("/admin/status", 200, False)
    assert reported == [True, False]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "shedding load" in messages[0]
    assert caplog.records[0].levelno == logging.WARNING
    assert "stopped shedding" in messages[1]


def test_exempt_routes_are_lmxs_three() -> None:
    assert {"/healthz", "/readyz", "/admin/health"} == EXEMPT_PATHS


def test_a_503_that_is_not_overloaded_is_not_shedding() -> None:
    reported: list[bool] = []
    watch = SheddingWatch(reported.append)
    watch.answered("/admin/status", 503, False)
    assert reported == []
