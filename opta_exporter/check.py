"""`opta-exporter --check`: the first thing an operator runs after installing.

It validates the configuration (already done by the caller), then reaches LMX once the
way the daemon will — snapshots, the event-stream handshake, the metrics relay — and says
in one line each what works and what does not.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from opta_exporter.config import Config
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.lmx.client import LmxClient, LmxError
from opta_exporter.readers.snapshots import Snapshotter
from opta_exporter.store import Store


def _events(lmx: LmxClient) -> str:
    """The handshake only: LMX may send no byte for 30 s, so headers are the answer."""
    path = "/admin/events"
    with lmx.open(path, accept="text/event-stream", read_timeout=5.0) as resp:
        media = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        status = resp.status_code
        if status in (401, 403):
            raise LmxError(path, f"HTTP {status}, admin key refused", status)
        if status != 200 or media != "text/event-stream":
            raise LmxError(path, f"HTTP {status} {media or 'no type'}", status)
    return "event stream handshake (200 text/event-stream)"


def _metrics(lmx: LmxClient) -> str:
    text = lmx.read_text("/admin/metrics")
    families = sum(1 for line in text.splitlines() if line.startswith("# TYPE "))
    return f"/admin/metrics readable for the relay ({families} families)"


def run_check(config: Config, session: requests.Session, say: Callable[[str], None]) -> int:
    say(
        f"ok    configuration: following {config.lmx_url}, serving "
        f"{config.listen_host or '*'}:{config.listen_port}{config.telemetry_path}, "
        f"admin key {'set' if config.admin_key is not None else 'not set'}"
    )
    snapshotter = Snapshotter(config, Store(LmxState(), ExporterHealth()), session)

    def snapshot() -> str:
        snap = snapshotter.fetch()
        return (
            f"/admin/status and /admin/memory: LMX {snap.version or '?'}, "
            f"{len(snap.models)} model(s) loaded"
        )

    lmx = LmxClient.from_config(config, session)
    steps: list[Callable[[], str]] = [snapshot, lambda: _events(lmx)]
    if config.relay_interval > 0:
        steps.append(lambda: _metrics(lmx))
    failed = 0
    for step in steps:
        try:
            say(f"ok    {step()}")
        except LmxError as exc:
            say(f"FAIL  {exc}")
            failed += 1
        except requests.RequestException as exc:
            say(f"FAIL  cannot reach {config.lmx_url}: {type(exc).__name__}")
            failed += 1
    return 1 if failed else 0
