"""SSE event -> typed LMX event.

LMX names every event (`event: model_loaded`) and sends its payload, a JSON object, as
the data. An unnamed event (SSE type `message`) is no LMX event today: it is counted
under that name and changes nothing. No I/O here: the consumer hands in the SSE event's
name and data text.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

# One event larger than this is refused: LMX's largest real payload is a few hundred
# bytes, so a megabyte is a broken stream or a hostile proxy, not a model event.
MAX_EVENT_CHARS = 1 << 20

# bad_id: an SSE `id:` that cannot be sent back as Last-Event-ID (stream/sse.py), ignored
ErrorReason = Literal["malformed_json", "not_an_object", "bad_field", "oversize", "bad_id"]
ERROR_REASONS: tuple[ErrorReason, ...] = (
    "malformed_json",
    "not_an_object",
    "bad_field",
    "oversize",
    "bad_id",
)


class SseEvent(NamedTuple):
    """One event as the SSE framing delivers it (stream/sse.py): the input of this module."""

    event: str
    data: bytes
    id: str | None


class LmxEvent(NamedTuple):
    kind: str
    data: dict[str, Any]


class EventError(Exception):
    """Bad input from the stream: counted under `reason`, never fatal."""

    def __init__(self, reason: ErrorReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: ErrorReason = reason
        self.detail = detail


_raw_decode = json.JSONDecoder().raw_decode
_SPACE = " \t\n\r"


def _loads(data: str | bytes) -> object:
    """json.loads without its per-call detours (encoding detection, decoder lookup):
    the per-event path's largest single cost."""
    text = data.decode() if type(data) is bytes else data
    assert isinstance(text, str)
    if text[:1] in _SPACE:
        text = text.lstrip(_SPACE)
    payload, end = _raw_decode(text)
    if end != len(text) and text[end:].strip(_SPACE):
        raise ValueError(f"extra data at {end}")
    return payload


def event_from_sse(name: str, data: str | bytes) -> LmxEvent:
    """Raises EventError; its detail names the event by at most 64 characters."""
    if len(data) > MAX_EVENT_CHARS:
        raise EventError("oversize", f"{name[:64]} event of {len(data)} characters")
    try:
        payload = _loads(data)
    except ValueError as exc:
        raise EventError("malformed_json", f"{name[:64]} event: {exc}") from None
    except RecursionError:  # thousands of nested brackets: hostile, not LMX
        raise EventError("malformed_json", f"{name[:64]} event nests too deeply") from None
    if type(payload) is not dict:
        raise EventError("not_an_object", f"{name[:64]} event data is {type(payload).__name__}")
    return LmxEvent(name, payload)
