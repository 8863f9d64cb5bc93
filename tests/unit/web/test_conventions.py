"""What every Prometheus exporter serves besides its own metrics, as node_exporter does:
process_* and python_* self-metrics (off with --web.disable-exporter-metrics), /-/healthy,
/-/ready, a landing page linking them, and the web config's response headers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from opta_exporter.web.app import with_headers
from tests.helpers import promtool_check
from tests.unit.web.test_app import OPENMETRICS, Answer, app_for

HAS_PROC = Path("/proc/self/stat").exists()  # ProcessCollector's source: none on macOS
SELF_FAMILIES = {"python_info", "python_gc_objects_collected", "python_gc_collections"}


def family_names(text: str, openmetrics: bool) -> set[str]:
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {family.name for family in parse(text)}


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_self_metrics_are_served_by_default_and_the_exposition_stays_valid(
    openmetrics: bool,
) -> None:
    headers = {"accept": OPENMETRICS} if openmetrics else {}
    body = Answer(app_for(), "/metrics", **headers).body.decode()
    names = family_names(body, openmetrics)  # the library's parser takes it whole
    assert names >= SELF_FAMILIES
    assert "opta_lmx_up" in names  # beside the exporter's own families
    # process_* where there is a /proc (Linux); on macOS the collector says nothing
    assert ("process_cpu_seconds" in names) is HAS_PROC
    if openmetrics:
        assert body.endswith("# EOF\n")
        assert body.count("# EOF") == 1
    else:  # promtool reads the text format; OpenMetrics is held to the library's parser
        promtool_check(body)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_the_flag_leaves_the_self_metrics_out(openmetrics: bool) -> None:
    headers = {"accept": OPENMETRICS} if openmetrics else {}
    app = app_for(disable_exporter_metrics=True)
    body = Answer(app, "/metrics", **headers).body.decode()
    names = family_names(body, openmetrics)
    assert "opta_lmx_up" in names
    assert not {name for name in names if name.startswith(("process_", "python_"))}
    if not openmetrics:
        promtool_check(body)


def test_healthy_answers_while_it_serves() -> None:
    answer = Answer(app_for(), "/-/healthy")
    assert (answer.status, answer.body) == ("200 OK", b"healthy\n")
    assert answer.headers["Content-Length"] == str(len(answer.body))


def test_the_landing_page_links_the_health_endpoints() -> None:
    page = Answer(app_for(), "/").body.decode()
    for path in ("/metrics", "/-/healthy", "/-/ready", "/healthz"):
        assert f'href="{path}"' in page


def test_configured_headers_go_on_every_answer_and_replace_the_apps() -> None:
    extra = [("X-Frame-Options", "deny"), ("Content-Security-Policy", "default-src 'none'")]
    app = with_headers(app_for(), extra)
    for path in ("/metrics", "/", "/healthz", "/-/healthy", "/-/ready", "/nothing"):
        answer = Answer(app, path)
        assert answer.headers["X-Frame-Options"] == "deny", path
        assert answer.headers["Content-Security-Policy"] == "default-src 'none'", path

    def app_setting_its_own(environ: dict[str, object], start: object) -> Iterable[bytes]:
        assert callable(start)
        start("200 OK", [("x-frame-options", "sameorigin"), ("Content-Type", "text/plain")])
        return [b"x"]

    answer = Answer(with_headers(app_setting_its_own, extra), "/")
    assert answer.headers == {
        "Content-Type": "text/plain",
        "X-Frame-Options": "deny",
        "Content-Security-Policy": "default-src 'none'",
    }
