"""Label values: free text from LMX normalised to small fixed sets, models under a cap.

Every label value that reaches Prometheus passes through here, because one unbounded
label (an error message, a per-request id) multiplies series until Prometheus suffers.
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_LABEL_CHARS = 256
UNLOAD_REASONS = frozenset({"manual", "ttl", "lru", "canary_failed"})
READINESS_STATES = ("admitted", "loading", "canary_pending", "routable", "quarantined")
FORMATS = frozenset({"mlx", "gguf"})
_TOKEN = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")


@lru_cache(maxsize=4096)  # model ids recur in many families
def escape_label(value: str) -> str:
    """A label value as both formats carry it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def usable_text(value: object) -> bool:
    """A non-empty str that UTF-8 can encode: JSON lets a lone surrogate (`\\ud800`) through,
    and one such label value would make every scrape fail."""
    if type(value) is not str or not value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unload_reason(value: object) -> str:
    return value if isinstance(value, str) and value in UNLOAD_REASONS else "other"


def model_format(value: object) -> str:
    if value is None:
        return "unknown"
    return value.lower() if isinstance(value, str) and value.lower() in FORMATS else "other"


def quantize_outcome(status: str) -> str | None:
    """`failed: <message>` is free text: only its prefix may become a label."""
    if status in {"completed", "cancelled"}:
        return status
    if status.startswith("failed"):
        return "failed"
    return None


class OpenSet:
    """A label whose values come from the wire but are few in practice (event types,
    backends): the first `limit` well-formed values are kept, the rest become `other`."""

    def __init__(self, known: tuple[str, ...], limit: int) -> None:
        self._seen = set(known)
        self._limit = len(known) + limit

    def __call__(self, value: object) -> str:
        if isinstance(value, str) and value in self._seen:
            return value
        if isinstance(value, str) and _TOKEN.fullmatch(value) and len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return "other"


class ModelCap:
    """At most `limit` distinct model values per metric; the rest are refused and counted.

    Gauges of unloaded models give their slot back (`release`); counters keep theirs,
    since a counter series must not vanish and reappear from zero while Prometheus
    still holds it. `max_metrics` bounds the metric names themselves where they come from
    outside (the relay: LMX's family names), so new names on every read cannot grow this
    without end; a value of a metric past that bound is refused, counted under `other`.
    """

    def __init__(self, limit: int, max_metrics: int | None = None) -> None:
        self.limit = limit
        self.max_metrics = max_metrics
        self._admitted: dict[str, set[str]] = {}
        self.dropped: dict[str, int] = {}

    def admit(self, metric: str, model: str) -> bool:
        admitted = self._admitted.get(metric)
        if admitted is None:
            if self.max_metrics is not None and len(self._admitted) >= self.max_metrics:
                self.dropped["other"] = self.dropped.get("other", 0) + 1
                return False
            admitted = self._admitted[metric] = set()
        if model in admitted:
            return True
        if len(model) <= MAX_LABEL_CHARS and len(admitted) < self.limit:
            admitted.add(model)
            return True
        self.dropped[metric] = self.dropped.get(metric, 0) + 1
        return False

    def metrics_tracked(self) -> int:
        return len(self._admitted)

    def clone(self) -> ModelCap:
        twin = ModelCap(self.limit, self.max_metrics)
        twin._admitted = {metric: set(models) for metric, models in self._admitted.items()}
        twin.dropped = dict(self.dropped)
        return twin

    def release(self, metric: str, model: str) -> None:
        self._admitted.get(metric, set()).discard(model)
