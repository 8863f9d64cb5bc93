"""The dashboard dialect: unnamed events whose data is `{"type": T, "data": {...}}`.

Older LMX builds and the Opta Local web dashboard speak it: full server snapshots
(`status`, `model_change`) and 10-50 Hz throughput samples on the same stream.
"""

from __future__ import annotations

from collections.abc import Callable

from opta_exporter.core.fields import Data, bad, finite, number, text
from opta_exporter.core.state import GIB, LmxState

Handler = Callable[[LmxState, Data, float], None]


def status_envelope(s: LmxState, d: Data, now: float) -> None:
    used, total = number(d, "vram_used_gb"), number(d, "vram_total_gb")
    active, tps = number(d, "active_requests"), number(d, "tokens_per_second")
    uptime = number(d, "uptime_seconds")
    temperature = finite(d, "temperature_celsius")
    listed = d.get("loaded_models")
    models: dict[str, float | None] | None = None
    if listed is not None:
        if type(listed) is not list or not all(type(m) is dict for m in listed):
            raise bad("loaded_models", "is not a list of objects")
        models = {}
        for item in listed:
            model_id = text(item, "id", required=True)
            assert model_id is not None
            models[model_id] = number(item, "vram_gb")
    if used is not None:
        s.memory_used = used * GIB
    if total is not None:
        s.memory_total = total * GIB
    if active is not None:
        s.in_flight = active
    if temperature is not None:
        s.temperature = temperature
    if uptime is not None:
        s.start_time = now - uptime
    if tps is not None:
        s.window.add(tps)
    if models is not None:
        s.replace_models(models)


def throughput_envelope(s: LmxState, d: Data, now: float) -> None:
    tps = number(d, "tokensPerSecond")
    if tps is None:
        raise bad("tokensPerSecond", "is missing")
    s.window.add(tps)


ENVELOPES: dict[str, Handler] = {
    "status": status_envelope,
    "model_change": status_envelope,
    "throughput": throughput_envelope,
}
