"""The LMX stand-in against real sockets: /admin/metrics (lmx_simulator/metrics.py) with LMX's
unescaped label values."""

from __future__ import annotations

import requests

from tests.unit.lmx_simulator.harness import Harness

ODD_ID = '/m/we"ird\\x.gguf'


def test_metrics_reproduce_lmx_unescaped_labels(h: Harness) -> None:
    sim = h.sim()
    before = requests.get(f"{sim.url}/admin/metrics", timeout=3).text
    assert "lmx_model_requests_total" not in before
    assert "lmx_speculative_acceptance_ratio NaN" in before
    sim.record_request(ODD_ID, latency_sec=0.3, completion_tokens=7)
    sim.record_request(ODD_ID, latency_sec=2.0, error=True, stream=True, completion_tokens=5)
    text = requests.get(f"{sim.url}/admin/metrics", timeout=3).text
    bucket = "lmx_request_duration_seconds_bucket"
    expected = [
        "lmx_requests_total 2",
        "lmx_errors_total 1",
        "lmx_stream_requests_total 1",
        f'lmx_model_requests_total{{model="{ODD_ID}"}} 2',
        f'lmx_model_tokens_total{{model="{ODD_ID}"}} 12',
        f'{bucket}{{model="{ODD_ID}",le="0.25"}} 0',
        f'{bucket}{{model="{ODD_ID}",le="0.5"}} 1',
        f'{bucket}{{model="{ODD_ID}",le="+Inf"}} 2',
    ]
    assert set(expected) <= set(text.splitlines())
