"""Event -> state changes: one handler per LMX event type, found through a dict.

Handlers read and check every field first and only then change state, so an event with
a bad field changes nothing and is counted as `bad_field`. Every field is optional
unless the event means nothing without it (a `model_loaded` without `model_id`).
A new LMX event type is a one-line addition to a table below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from opta_exporter.events import EventError, LmxEvent, event_from_sse
from opta_exporter.labels import (
    READINESS_STATES,
    OpenSet,
    model_format,
    quantize_outcome,
    unload_reason,
)
from opta_exporter.state import LmxState

Data = dict[str, Any]
Handler = Callable[[LmxState, Data, float], None]

ENVELOPE_TYPES = ("status", "model_change", "throughput")


def _bad(key: str, why: str) -> EventError:
    return EventError("bad_field", f"{key} {why}")


def _str(data: Data, key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise _bad(key, "is missing")
        return None
    if type(value) is not str or not value:
        raise _bad(key, "is not a non-empty string")
    return value


def _model(data: Data) -> str:
    model = _str(data, "model_id", required=True)
    assert model is not None
    return model


_HUGE = 1 << 1000  # JSON integers beyond a float's range: not a figure LMX could mean


def _finite(data: Data, key: str) -> float | None:
    """A finite number, or None when absent: NaN and infinities would corrupt sums."""
    value = data.get(key)
    if value is None:
        return None
    if type(value) is float:
        if value - value == 0.0:  # false for NaN and both infinities
            return value
    elif type(value) is int:
        if -_HUGE < value < _HUGE:
            return float(value)
    else:
        raise _bad(key, f"is {type(value).__name__}, not a number")
    raise _bad(key, f"is not finite: {str(value)[:40]}")


def _num(data: Data, key: str, high: float = math.inf) -> float | None:
    """A finite number in [0, high]: negative durations and counts mean nothing."""
    number = _finite(data, key)
    if number is not None and not 0.0 <= number <= high:
        raise _bad(key, f"is out of range: {number!r}")
    return number


def _bump(table: dict[Any, float], key: Any, amount: float = 1.0) -> None:
    table[key] = table.get(key, 0.0) + amount


# -- named LMX events -----------------------------------------------------------------
def model_loaded(s: LmxState, d: Data, now: float) -> None:
    model, fmt = _model(d), model_format(d.get("format"))
    memory, duration = _num(d, "memory_gb"), _num(d, "duration_sec")
    s.add_model(model, fmt, memory)
    if s.cap.admit("opta_lmx_model_loads_total", model):
        _bump(s.loads, (model, fmt))
    if duration is not None:
        s.load_duration.observe((fmt,), duration)


def model_unloaded(s: LmxState, d: Data, now: float) -> None:
    model = _model(d)
    s.remove_model(model)
    _bump(s.unloads, unload_reason(d.get("reason")))


def _canary(outcome: str) -> Handler:
    def handler(s: LmxState, d: Data, now: float) -> None:
        _model(d)
        duration = _num(d, "duration_sec")
        _bump(s.canaries, outcome)
        if duration is not None:
            s.canary_duration.observe((outcome,), duration)

    return handler


def model_readiness_changed(s: LmxState, d: Data, now: float) -> None:
    model, state = _model(d), d.get("state")
    if state not in READINESS_STATES:
        raise _bad("state", f"is not a readiness state: {str(state)[:40]!r}")
    crashes = _num(d, "crash_count")
    if s.cap.admit("opta_lmx_model_readiness", model):
        s.readiness[model] = state
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
        raise _bad("outcome", "is neither pass nor fail")
    _bump(s.compat, (_open_label(s, "backend", BACKENDS, d.get("backend", "unknown")), outcome))


def _validate_model(s: LmxState, d: Data, now: float) -> None:
    _model(d)


def _download(outcome: str) -> Handler:
    def handler(s: LmxState, d: Data, now: float) -> None:
        repo, duration = _str(d, "repo_id"), _num(d, "duration_sec")
        _bump(s.downloads, outcome)
        if duration is not None:
            s.download_duration.observe((), duration)
        if repo is not None:
            s.download_progress.pop(repo, None)
            s.cap.release("opta_lmx_download_progress_ratio", repo)

    return handler


def download_progress(s: LmxState, d: Data, now: float) -> None:
    repo = _str(d, "repo_id", required=True)
    percent = _num(d, "progress_percent", 100.0)
    assert repo is not None
    if percent is not None and s.cap.admit("opta_lmx_download_progress_ratio", repo):
        s.download_progress[repo] = percent / 100.0


def quantize_progress(s: LmxState, d: Data, now: float) -> None:
    model, status = _model(d), _str(d, "status", required=True)
    percent = _num(d, "percent", 100.0)
    assert status is not None
    outcome = quantize_outcome(status)
    if outcome is not None:
        _bump(s.quantize_jobs, outcome)
        s.quantize_progress.pop(model, None)
        s.cap.release("opta_lmx_quantize_progress_ratio", model)
    elif percent is not None and s.cap.admit("opta_lmx_quantize_progress_ratio", model):
        s.quantize_progress[model] = percent / 100.0


def config_reloaded(s: LmxState, d: Data, now: float) -> None:
    threshold = _num(d, "memory_threshold", 100.0)
    s.config_reloads += 1
    if threshold is not None:
        s.memory_threshold = threshold / 100.0


def memory_warning(s: LmxState, d: Data, now: float) -> None:
    used, total = _num(d, "used_gb"), _num(d, "total_gb")
    threshold = _num(d, "threshold_percent", 100.0)
    s.memory_warnings += 1
    if used is not None:
        s.memory_used = used * 1024.0**3
    if total is not None:
        s.memory_total = total * 1024.0**3
    if threshold is not None:
        s.memory_threshold = threshold / 100.0


def request_completed(s: LmxState, d: Data, now: float) -> None:
    model, error = _model(d), d.get("error", False)
    if type(error) is not bool:
        raise _bad("error", "is not a boolean")
    latency, ttft = _num(d, "latency_sec"), _num(d, "ttft_sec")
    prompt, completion = _num(d, "prompt_tokens"), _num(d, "completion_tokens")
    tps = _num(d, "tokens_per_second")
    if s.cap.admit("opta_lmx_requests_total", model):
        _bump(s.requests, (model, "error" if error else "success"))
        if latency is not None:
            s.request_duration.observe((model,), latency)
        if ttft is not None:
            s.ttft.observe((model,), ttft)
        if prompt is not None:
            _bump(s.prompt_tokens, model, prompt)
        if completion is not None:
            _bump(s.completion_tokens, model, completion)
    if tps is not None:
        s.window.add(tps)


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
    "download_progress": download_progress,
    "quantize_progress": quantize_progress,
    "config_reloaded": config_reloaded,
    "memory_warning": memory_warning,
    "request_completed": request_completed,
    "heartbeat": _ignore,
}


# -- the dashboard dialect's envelopes -------------------------------------------------
def status_envelope(s: LmxState, d: Data, now: float) -> None:
    used, total = _num(d, "vram_used_gb"), _num(d, "vram_total_gb")
    active, tps = _num(d, "active_requests"), _num(d, "tokens_per_second")
    uptime = _num(d, "uptime_seconds")
    temperature = _finite(d, "temperature_celsius")
    listed = d.get("loaded_models")
    models: dict[str, float | None] | None = None
    if listed is not None:
        if type(listed) is not list or not all(type(m) is dict for m in listed):
            raise _bad("loaded_models", "is not a list of objects")
        models = {}
        for item in listed:
            model_id = _str(item, "id", required=True)
            assert model_id is not None
            models[model_id] = _num(item, "vram_gb")
    if used is not None:
        s.memory_used = used * 1024.0**3
    if total is not None:
        s.memory_total = total * 1024.0**3
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
    tps = _num(d, "tokensPerSecond")
    if tps is None:
        raise _bad("tokensPerSecond", "is missing")
    s.window.add(tps)


ENVELOPES: dict[str, Handler] = {
    "status": status_envelope,
    "model_change": status_envelope,
    "throughput": throughput_envelope,
}

KNOWN_EVENTS = (*NAMED, *ENVELOPES, "message")


def _event_label(s: LmxState, kind: str) -> str:
    return _open_label(s, "event", KNOWN_EVENTS, kind)


def apply_event(state: LmxState, event: LmxEvent, now: float) -> None:
    """Count the event, then apply it; raises EventError (after counting it)."""
    _bump(state.events, _event_label(state, event.kind))
    handler = (ENVELOPES if event.envelope else NAMED).get(event.kind)
    if handler is None:
        if event.envelope:
            raise EventError("unknown_envelope", "envelope type is not known")
        return  # unknown named types appear as LMX grows: counted above, nothing more
    state.seq += 1  # before the handler: what it marks must count as after any snapshot
    handler(state, event.data, now)


def ingest(state: LmxState, name: str, data: str | bytes, now: float) -> EventError | None:
    """The per-event path: SSE name + data text in, state changed or error counted."""
    try:
        event = event_from_sse(name, data)
    except EventError as exc:
        _bump(state.events, _event_label(state, name))
        _bump(state.event_errors, exc.reason)
        return exc
    try:
        apply_event(state, event, now)
    except EventError as exc:
        _bump(state.event_errors, exc.reason)
        return exc
    return None
