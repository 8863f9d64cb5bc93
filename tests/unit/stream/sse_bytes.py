"""Hypothesis strategies for SSE byte streams -- lines, line ends and garbage, cut anywhere --
and the settings of the properties over them (stream/sse.py's and the whole pipeline's)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LINES = [
    b"event: model_loaded",
    b"event: heartbeat",
    b"event: model_readiness_changed",
    b"event: request_completed",  # promised by LMX's docstrings, never sent: only counted
    b'data: {"model_id": "m1", "format": "mlx", "duration_sec": 2}',
    b'data: {"timestamp": 1}',
    b'data: {"model_id": "m1", "state": "routable", "crash_count": 0}',
    b'data: {"type": "throughput", "data": {"tokensPerSecond": 5}}',  # no LMX dialect: counted
    b"data",
    b"data:",
    b"data: [1, 2]",
    b"id: 7",
    b"id",
    b"retry: 250",
    b"retry: x",
    b": comment",
    b"\xef\xbb\xbf",
    b"\xff\xfe\x00",
    b"x" * 40,
    b"",
]
EOLS = [b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b"\r\n\r\n"]
pieces = st.lists(
    st.sampled_from(LINES) | st.sampled_from(EOLS) | st.binary(max_size=16), max_size=60
)
streams = pieces.map(b"".join)
