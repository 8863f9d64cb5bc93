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
from opta_exporter.readers.snapshots import SnapshotError, Snapshotter
from opta_exporter.store import Store


def _headers(config: Config, accept: str) -> dict[str, str]:
    headers = {"Accept": accept}
    if config.admin_key is not None:
        headers["X-Admin-Key"] = config.admin_key
    return headers


def _events(config: Config, session: requests.Session) -> str:
    """The handshake only: LMX may send no byte for 30 s, so headers are the answer."""
    with session.get(
        config.lmx_url + "/admin/events",
        stream=True,
        headers=_headers(config, "text/event-stream"),
        timeout=(config.connect_timeout, 5.0),
        allow_redirects=False,
    ) as resp:
        media = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if resp.status_code in (401, 403):
            raise SnapshotError(f"/admin/events: HTTP {resp.status_code}, admin key refused")
        if resp.status_code != 200 or media != "text/event-stream":
            raise SnapshotError(f"/admin/events: HTTP {resp.status_code} {media or 'no type'}")
    return "event stream handshake (200 text/event-stream)"


def _metrics(config: Config, session: requests.Session) -> str:
    resp = session.get(
        config.lmx_url + "/admin/metrics",
        headers=_headers(config, "text/plain"),
        timeout=(config.connect_timeout, 10.0),
        allow_redirects=False,
    )
    if resp.status_code != 200:
        raise SnapshotError(f"/admin/metrics: HTTP {resp.status_code}")
    families = sum(1 for line in resp.text.splitlines() if line.startswith("# TYPE "))
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

    steps: list[Callable[[], str]] = [snapshot, lambda: _events(config, session)]
    if config.relay_interval > 0:
        steps.append(lambda: _metrics(config, session))
    failed = 0
    for step in steps:
        try:
            say(f"ok    {step()}")
        except SnapshotError as exc:
            say(f"FAIL  {exc}")
            failed += 1
        except requests.RequestException as exc:
            say(f"FAIL  cannot reach {config.lmx_url}: {type(exc).__name__}")
            failed += 1
    return 1 if failed else 0
