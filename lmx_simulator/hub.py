"""LMX's event bus, as the stand-in runs it: a bounded queue per subscriber, a slot limit,
and the zombie rule (a subscriber whose queue overflows is dropped from the bus but its
response stays open, with heartbeats only)."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from dataclasses import dataclass


def heartbeat_frame() -> bytes:
    """LMX's idle heartbeat: a named event carrying only the server's wall clock."""
    return f"event: heartbeat\ndata: {json.dumps({'timestamp': time.time()})}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    """One open /admin/events response; `closing` makes its handler end the stream."""

    queue: queue.Queue[bytes | None]
    closing: bool = False


class EventHub:
    """LMX's event bus: bounded per-subscriber queues, a slot limit, zombies on overflow.

    A publish that finds a queue full unsubscribes that client but leaves its response
    open, exactly like LMX: the stream then carries heartbeats only, forever.
    """

    def __init__(
        self, cond: threading.Condition, *, queue_size: int, capacity: int, zombie_on_overflow: bool
    ) -> None:
        self.cond = cond
        self._maxsize = queue_size if zombie_on_overflow else 0
        self._capacity = capacity
        self.live: set[Subscriber] = set()
        self.zombies: set[Subscriber] = set()
        self.connections_total = 0
        self.events_published = 0
        self.shut = False  # set by stop(): a handler that subscribes late ends at once

    def subscribe(self) -> Subscriber | None:
        """A new subscriber, or None when every outside slot is taken (LMX still says 200)."""
        with self.cond:
            self.connections_total += 1
            self.cond.notify_all()
            if self.shut:
                return Subscriber(queue.Queue(), closing=True)
            if len(self.live) >= self._capacity:
                return None
            sub = Subscriber(queue.Queue(maxsize=self._maxsize))
            self.live.add(sub)
            return sub

    def drop(self, sub: Subscriber) -> None:
        with self.cond:
            self.live.discard(sub)
            self.zombies.discard(sub)
            self.cond.notify_all()

    def publish(self, frame: bytes) -> None:
        with self.cond:
            self.events_published += 1
            for sub in list(self.live):
                try:
                    sub.queue.put_nowait(frame)
                except queue.Full:
                    self.live.discard(sub)
                    self.zombies.add(sub)
            self.cond.notify_all()

    def end(self, sub: Subscriber) -> None:
        """Make one stream's handler finish; a full queue needs no wake-up."""
        with self.cond:
            sub.closing = True
            with contextlib.suppress(queue.Full):
                sub.queue.put_nowait(None)

    def close_all(self, *, shut: bool = False) -> None:
        """End every stream, zombies included."""
        with self.cond:
            self.shut = self.shut or shut
            for sub in self.live | self.zombies:
                self.end(sub)
