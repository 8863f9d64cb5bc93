"""Tokens/s from LMX's own counters: the rate between two reads of its completion-token
total. LMX sends no live throughput figure, so this is the window's only honest source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TokenCount:
    """One read of LMX's counters: when (our monotonic and wall clocks) and what."""

    mono: float
    wall: float
    completion_tokens: float
    uptime: float | None = None  # LMX's uptime at the read, when it says


def rate(before: TokenCount, after: TokenCount) -> float | None:
    """Δtokens / Δt between two reads, or None where the pair means no rate: no time
    passed, or LMX restarted between them (its counter went down or its uptime did), or
    a counter beyond any float (a broken body) that would put inf or NaN in the window."""
    elapsed = after.mono - before.mono
    if elapsed <= 0:
        return None
    if after.completion_tokens < before.completion_tokens:
        return None
    if after.uptime is not None and before.uptime is not None and after.uptime < before.uptime:
        return None
    tokens_per_second = (after.completion_tokens - before.completion_tokens) / elapsed
    return tokens_per_second if math.isfinite(tokens_per_second) else None
