"""The reconnect policy, pure: how long to wait after a stream ended, and why.

Exponential with *proportional* jitter: each wait is drawn from [d/2, d] where
d = base * 2^(failures-1), capped. One exporter per LMX is no thundering herd, so full
jitter's spread buys little, while a floor of d/2 guarantees attempts are spaced (a full
or restarting LMX is never hammered). The failure count resets once a connection has
delivered an event; auth failures wait the cap.

A server's `retry:` or `Retry-After` is a floor under the next wait only, and never above
the cap: the operator's `--backoff.cap` is the longest the exporter stays away, whatever
a server (or a hostile proxy) says, and one odd value must not slow every later
reconnect.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol


class Ended(Protocol):
    """How a connection ended (wire.StreamEnded)."""

    @property
    def reason(self) -> str: ...
    @property
    def healthy(self) -> bool: ...
    @property
    def retry_after(self) -> float | None: ...


class Backoff:
    def __init__(self, base: float, cap: float, rng: Callable[[], float] = random.random) -> None:
        self._base = base
        self._cap = cap
        self._rng = rng
        self._failures = 0
        # the stream's `retry:` (seconds) since the last wait: for the next wait only
        self.server_retry: float | None = None

    def next_wait(self, ended: Ended) -> float:
        floor = max(ended.retry_after or 0.0, self.server_retry or 0.0)
        self.server_retry = None  # used up, whatever this ending was
        if ended.reason == "dropped":
            return 0.0  # a zombie subscription: resubscribe at once
        if ended.healthy:
            self._failures = 0
        self._failures += 1
        if ended.reason == "auth":
            delay = self._cap
        else:
            delay = min(self._cap, self._base * 2 ** (self._failures - 1))
        wait = delay * (0.5 + 0.5 * self._rng())
        return max(wait, min(floor, self._cap))
