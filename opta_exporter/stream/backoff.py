"""The reconnect policy, pure: how long to wait after a stream ended, and why.

Exponential with *proportional* jitter: each wait is drawn from [d/2, d] where
d = base * 2^(failures-1), capped. One exporter per LMX is no thundering herd, so full
jitter's spread buys little, while a floor of d/2 guarantees attempts are spaced (a full
or restarting LMX is never hammered). The failure count resets once a connection has
delivered an event; auth failures wait the cap; `retry:` and `Retry-After` set a floor
(bounded by MAX_SERVER_WAIT, so a hostile header cannot park the daemon for a month).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

MAX_SERVER_WAIT = 600.0  # the most a Retry-After or retry: may make us wait


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
        self.server_retry: float | None = None  # the stream's last `retry:`, in seconds

    def next_wait(self, ended: Ended) -> float:
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
        floor = max(ended.retry_after or 0.0, self.server_retry or 0.0)
        return max(wait, min(floor, MAX_SERVER_WAIT))
