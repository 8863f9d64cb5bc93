"""Reading one field of an LMX event: tolerant of absence, strict about type and range.

Every handler reads and checks all its fields through these before it changes state, so a
bad field refuses the whole event (counted as `bad_field`) and half an event never lands.
"""

from __future__ import annotations

import math
from typing import Any

from opta_exporter.core.events import EventError
from opta_exporter.core.labels import usable_text

Data = dict[str, Any]


def bad(key: str, why: str) -> EventError:
    return EventError("bad_field", f"{key} {why}")


def text(data: Data, key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise bad(key, "is missing")
        return None
    if not usable_text(value):
        raise bad(key, "is not a non-empty UTF-8 string")
    return value  # type: ignore[no-any-return]


def model_id(data: Data) -> str:
    model = data.get("model_id")
    if type(model) is str and model.isascii() and model:
        return model  # the usual id, checked without the general path
    checked = text(data, "model_id", required=True)
    assert checked is not None
    return checked


# Beyond 2^53 a float no longer counts in ones, and a few such values overflow a
# histogram's sum to +Inf: no duration, count or size LMX reports comes near.
_HUGE = 2**53


def finite(data: Data, key: str) -> float | None:
    """A finite number, or None when absent: NaN and infinities would corrupt sums."""
    value = data.get(key)
    if value is None:
        return None
    if type(value) is float:
        if -_HUGE < value < _HUGE:  # false for NaN and both infinities
            return value
    elif type(value) is int:
        if -_HUGE < value < _HUGE:
            return float(value)
    else:
        raise bad(key, f"is {type(value).__name__}, not a number")
    raise bad(key, f"is not finite: {str(value)[:40]}")


def number(data: Data, key: str, high: float = math.inf) -> float | None:
    """A finite number in [0, high]: negative durations and counts mean nothing.
    The per-event path calls this most: floats are checked inline, the rest by finite()."""
    value = data.get(key)
    if value is None:
        return None
    kind = type(value)
    if kind is float and 0.0 <= value <= high and value < _HUGE:  # NaN fails here
        return value  # type: ignore[no-any-return]
    if kind is int and 0 <= value <= high and value < _HUGE:
        return float(value)
    checked = finite(data, key)
    if checked is not None and not 0.0 <= checked <= high:
        raise bad(key, f"is out of range: {checked!r}")
    return checked


def bump(table: dict[Any, float], key: Any, amount: float = 1.0) -> None:
    table[key] = table.get(key, 0.0) + amount
