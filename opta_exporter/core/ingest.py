"""Event -> state changes: one handler per LMX event type, found through a dict.

Handlers read and check every field first and only then change state, so an event with
a bad field changes nothing and is counted as `bad_field`. Every field is optional
unless the event means nothing without it (a `model_loaded` without `model_id`).
A new LMX event type is a one-line addition to a table below.
"""

from __future__ import annotations

from collections.abc import Callable

from opta_exporter.core.events import EventError, LmxEvent, event_from_sse
from opta_exporter.core.fields import Data, bad, bump, model_id, number, text
from opta_exporter.core.labels import (
    READINESS_STATES,
    OpenSet,
    model_format,
    quantize_outcome,
    unload_reason,
)
from opta_exporter.core.state import LmxState

Handler = Callable[[LmxState, Data, float], None]


# -- named LMX events -----------------------------------------------------------------
def model_loaded(s: LmxState, d: Data, now: float) -> None:
    model, fmt = model_id(d), model_format(d.get("format"))
    memory, duration = number(d, "memory_gb"), number(d, "duration_sec")
    s.add_model(model, fmt, memory)
    if s.cap.admit("opta_lmx_model_loads_total", model):
        bump(s.loads, (model, fmt))
    if duration is not None:
        s.load_duration.observe((fmt,), duration)


def model_unloaded(s: LmxState, d: Data, now: float) -> None:
    model = model_id(d)
    s.remove_model(model)
    bump(s.unloads, unload_reason(d.get("reason")))


def _canary(outcome: str) -> Handler:
    def handler(s: LmxState, d: Data, now: float) -> None:
        model_id(d)
        duration = number(d, "duration_sec")
        bump(s.canaries, outcome)
        if duration is not None:
            s.canary_duration.observe((outcome,), duration)

    return handler


def model_readiness_changed(s: LmxState, d: Data, now: float) -> None:
    model, state = model_id(d), d.get("state")
    if state not in READINESS_STATES:
        raise bad("state", f"is not a readiness state: {str(state)[:40]!r}")
    crashes = number(d, "crash_count")
    if s.cap.admit("opta_lmx_model_readiness", model):
        s.readiness[model] = state
        s.readiness_seq[model] = s.seq  # newer than any /admin/models read before it
    if crashes is not None and s.cap.admit("opta_lmx_model_crashes", model):
        s.crashes[model] = crashes


BACKENDS = ("mlx", "gguf", "llama_cpp", "vllm", "unknown")


def _open_label(s: LmxState, name: str, known: tuple[str, ...], value: object) -> str:
    labels = s.open_labels.get(name)
    if labels is None:
        labels = s.open_labels[name] = OpenSet(known, limit=32)
    return labels(value)


def model_compatibility_recorded(s: LmxState, d: Data, now: float) -> None:
    outcome = d.get("outcome")
    if outcome not in ("pass", "fail"):
        raise bad("outcome", "is neither pass nor fail")
    bump(s.compat, (_open_label(s, "backend", BACKENDS, d.get("backend", "unknown")), outcome))


def _validate_model(s: LmxState, d: Data, now: float) -> None:
    model_id(d)


def _download(outcome: str) -> Handler:
    def handler(s: LmxState, d: Data, now: float) -> None:
        duration = number(d, "duration_sec")
        bump(s.downloads, outcome)
        if duration is not None:
            s.download_duration.observe((), duration)

    return handler


def quantize_progress(s: LmxState, d: Data, now: float) -> None:
    """LMX says 0 at a job's start and 100 at its end: only the outcome is news (a job's
    progress is nowhere; /admin/quantize has the jobs by status)."""
    model_id(d)
    status = text(d, "status", required=True)
    assert status is not None
    outcome = quantize_outcome(status)
    if outcome is not None:
        bump(s.quantize_jobs, outcome)


def config_reloaded(s: LmxState, d: Data, now: float) -> None:
    threshold = number(d, "memory_threshold", 100.0)
    s.config_reloads += 1
    if threshold is not None:
        s.memory_threshold = threshold / 100.0


def _ignore(s: LmxState, d: Data, now: float) -> None:
    """Heartbeats count as events and keep the stream fresh; nothing else to do."""


NAMED: dict[str, Handler] = {
    "model_loaded": model_loaded,
    "model_unloaded": model_unloaded,
    "model_canary_started": _validate_model,
    "model_canary_passed": _canary("passed"),
    "model_canary_failed": _canary("failed"),
    "model_readiness_changed": model_readiness_changed,
    "model_compatibility_recorded": model_compatibility_recorded,
    "model_ttl_evicted": _validate_model,
    "download_completed": _download("completed"),
    "download_failed": _download("failed"),
    "download_cancelled": _download("cancelled"),
    "quantize_progress": quantize_progress,
    "config_reloaded": config_reloaded,
    "heartbeat": _ignore,
}


# LMX's docstrings promise `request_completed`, `memory_warning` and `download_progress`,
# but no LMX code sends them: like any type not above, they are counted and nothing more.
KNOWN_EVENTS = (*NAMED, "message")


_KNOWN = frozenset(KNOWN_EVENTS)


def _event_label(s: LmxState, kind: str) -> str:
    return kind if kind in _KNOWN else _open_label(s, "event", KNOWN_EVENTS, kind)


def apply_event(state: LmxState, event: LmxEvent, now: float) -> None:
    """Count the event, then apply it; raises EventError (after counting it)."""
    label = _event_label(state, event.kind)
    state.events[label] = state.events.get(label, 0.0) + 1.0
    handler = NAMED.get(event.kind)
    if handler is None:
        return  # unknown named types appear as LMX grows: counted above, nothing more
    state.seq += 1  # before the handler: what it marks must count as after any snapshot
    handler(state, event.data, now)


def ingest(state: LmxState, name: str, data: str | bytes, now: float) -> EventError | None:
    """The per-event path: SSE name + data text in, state changed or error counted."""
    try:
        event = event_from_sse(name, data)
    except EventError as exc:
        bump(state.events, _event_label(state, name))
        bump(state.event_errors, exc.reason)
        return exc
    try:
        apply_event(state, event, now)
    except EventError as exc:
        bump(state.event_errors, exc.reason)
        return exc
    return None
