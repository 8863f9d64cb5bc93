"""Tokens/s from LMX's own counters: the rate between two reads of its completion-token
totals, overall and per model. LMX sends no live throughput figure, so this is the
window's only honest source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from opta_exporter.core.window import ThroughputWindow


@dataclass(frozen=True)
class TokenCount:
    """One read of LMX's counters: when (our monotonic and wall clocks) and what."""

    mono: float
    wall: float
    completion_tokens: float
    uptime: float | None = None  # LMX's uptime at the read, when it says
    # lmx_model_tokens_total per model (only models that served a request; capped)
    per_model: Mapping[str, float] = field(default_factory=dict)


def _elapsed(before: TokenCount, after: TokenCount) -> float | None:
    """Seconds between two reads that can make a rate: time passed and LMX did not
    restart between them (its total went down, or its uptime did)."""
    elapsed = after.mono - before.mono
    if elapsed <= 0 or after.completion_tokens < before.completion_tokens:
        return None
    if after.uptime is not None and before.uptime is not None and after.uptime < before.uptime:
        return None
    return elapsed


def _per_second(tokens: float, elapsed: float) -> float | None:
    """None for a counter beyond any float (a broken body): no inf or NaN in a window."""
    tokens_per_second = tokens / elapsed
    return tokens_per_second if math.isfinite(tokens_per_second) else None


def rate(before: TokenCount, after: TokenCount) -> float | None:
    """Δtokens / Δt between two reads, or None where the pair means no rate."""
    elapsed = _elapsed(before, after)
    if elapsed is None:
        return None
    return _per_second(after.completion_tokens - before.completion_tokens, elapsed)


def model_rates(before: TokenCount, after: TokenCount) -> dict[str, float]:
    """Each model's tokens/s between two reads, for the models both reads have: a model
    first seen in `after` has no start (its counter may have begun before `before`), and
    one whose counter went down was unloaded and loaded again (its series restarts)."""
    elapsed = _elapsed(before, after)
    if elapsed is None:
        return {}
    rates: dict[str, float] = {}
    for model, tokens in after.per_model.items():
        start = before.per_model.get(model)
        if start is None or tokens < start:
            continue
        tokens_per_second = _per_second(tokens - start, elapsed)
        if tokens_per_second is not None:
            rates[model] = tokens_per_second
    return rates


class Throughput:
    """What the relay's reads feed: the total's window, each model's (for the live
    chart) and the read the next rates start from. A model's window goes once it holds
    no sample; the relay's cap bounds how many there are, `max_models` bounds them too."""

    def __init__(self, duration: float, max_models: int) -> None:
        self.duration, self.max_models = duration, max_models
        self.window = ThroughputWindow(duration)
        self.models: dict[str, ThroughputWindow] = {}
        self.last: TokenCount | None = None

    def count(self, count: TokenCount) -> float | None:
        """A read's counters: the rates since the last read join the windows."""
        before, self.last = self.last, count
        tokens_per_second = None if before is None else rate(before, count)
        if tokens_per_second is not None:
            self.window.add(count.wall, tokens_per_second)
        per_model = {} if before is None else model_rates(before, count)
        windows = self.models
        for model, model_rate in per_model.items():
            window = windows.get(model)
            if window is None:
                if len(windows) >= self.max_models:
                    continue
                window = windows[model] = ThroughputWindow(self.duration)
            window.add(count.wall, model_rate)
        for model in [m for m in windows if m not in per_model]:
            windows[model].prune(count.wall)
            if not len(windows[model]):
                del windows[model]
        return tokens_per_second

    def clone(self) -> Throughput:
        twin = Throughput(self.duration, self.max_models)
        twin.window = self.window.clone()
        twin.models = {m: w.clone() for m, w in self.models.items()}
        twin.last = self.last
        return twin
