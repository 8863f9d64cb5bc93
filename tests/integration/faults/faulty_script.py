"""Per-connection scripts for the fault-injecting LMX (faulty_lmx.py).

A script is the list of steps one `/admin/events` connection plays, in order: events,
raw bytes, pauses, and how the connection ends. Steps only talk to the `Wire` protocol,
so the byte-level work stays in the server and a script reads like the fault it is.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Literal, Protocol

SSE_TYPE = "text/event-stream; charset=utf-8"


@dataclass(frozen=True)
class Effect:
    """What an event does to LMX's model set (so a dropped one can be accounted for)."""

    kind: Literal["load", "unload"]
    model: str
    memory_gb: float = 1.0


class Wire(Protocol):
    """One connection as a step sees it (implemented by faulty_lmx.Connection)."""

    chunked: bool

    def chunk(self, data: bytes) -> None: ...
    def send(self, data: bytes) -> None: ...
    def apply(self, effect: Effect, *, delivered: bool) -> None: ...
    def delivered(self, step: Send) -> None: ...
    def await_snapshot(self, timeout: float) -> None: ...
    def hold(self, timeout: float, *, releasable: bool) -> None: ...
    def pause(self, seconds: float) -> None: ...
    def finish(self, ending: str, *, terminate: bool) -> None: ...
    def outage(self, seconds: float, models: dict[str, float] | None) -> None: ...


class Step(Protocol):
    def run(self, wire: Wire) -> None: ...


def sse_frame(event: str | None, data: object, eol: bytes = b"\n") -> bytes:
    """One event framed as LMX frames it: `json.dumps` on one `data:` line."""
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    head = b"event: " + event.encode() + b"\n" if event else b""
    return (head + b"data: " + body + b"\n\n").replace(b"\n", eol)


@dataclass(frozen=True)
class Send:
    """One event, one HTTP chunk (as uvicorn sends it); `trickle` sends a byte per chunk."""

    name: str
    payload: dict[str, object]
    effect: Effect | None = None
    trickle: bool = False
    eol: bytes = b"\n"

    @property
    def frame(self) -> bytes:
        return sse_frame(self.name, self.payload, self.eol)

    def run(self, wire: Wire) -> None:
        if self.effect is not None:
            wire.apply(self.effect, delivered=True)
        data = self.frame
        if self.trickle:
            for i in range(len(data)):
                wire.chunk(data[i : i + 1])
        else:
            wire.chunk(data)
        wire.delivered(self)


@dataclass(frozen=True)
class Raw:
    """Bytes that are not a counted event: comments, `retry:`/`id:` lines, garbage."""

    data: bytes

    def run(self, wire: Wire) -> None:
        wire.chunk(self.data)


@dataclass(frozen=True)
class Big:
    """An event line of `size` bytes in one chunk, written in pieces: never held whole."""

    size: int
    piece: int = 1 << 16

    def run(self, wire: Wire) -> None:
        head, tail = b"event: model_loaded\ndata: ", b"\n\n"
        total = len(head) + self.size + len(tail)
        if wire.chunked:
            wire.send(b"%x\r\n" % total)
        wire.send(head)
        block = b"x" * self.piece
        left = self.size
        while left > 0:
            wire.send(block[: min(left, self.piece)])
            left -= self.piece
        wire.send(tail + (b"\r\n" if wire.chunked else b""))


@dataclass(frozen=True)
class Cut:
    """Half of an event, then the connection closes (a crash mid-write)."""

    send: Send

    def run(self, wire: Wire) -> None:
        if self.send.effect is not None:
            wire.apply(self.send.effect, delivered=False)
        data = self.send.frame
        if wire.chunked:
            wire.send(b"%x\r\n" % len(data))
        wire.send(data[: len(data) // 2])
        wire.finish("cut", terminate=False)


@dataclass(frozen=True)
class Drop:
    """LMX's model set changes but the event never reaches this subscriber."""

    effect: Effect

    def run(self, wire: Wire) -> None:
        wire.apply(self.effect, delivered=False)


@dataclass(frozen=True)
class AwaitSnapshot:
    """Wait until the exporter's connect-time snapshot was served, so later events are
    newer than it (a real LMX is silent this long: it sends no byte before an event)."""

    timeout: float = 5.0

    def run(self, wire: Wire) -> None:
        wire.await_snapshot(self.timeout)


@dataclass(frozen=True)
class Pause:
    seconds: float

    def run(self, wire: Wire) -> None:
        wire.pause(self.seconds)


@dataclass(frozen=True)
class Hold:
    """Stay open and silent until the test calls `release()` (then the next step runs)."""

    timeout: float = 30.0

    def run(self, wire: Wire) -> None:
        wire.hold(self.timeout, releasable=True)


@dataclass(frozen=True)
class Stall:
    """Stay open and silent, no heartbeat, until the client gives up (or the server stops)."""

    timeout: float = 30.0

    def run(self, wire: Wire) -> None:
        wire.hold(self.timeout, releasable=False)
        wire.finish("stall", terminate=False)


@dataclass(frozen=True)
class End:
    """The terminating chunk, then close: the connection ended cleanly ("stayed open")."""

    def run(self, wire: Wire) -> None:
        wire.finish("end", terminate=True)


@dataclass(frozen=True)
class Close:
    """Close at an event boundary without the terminating chunk."""

    def run(self, wire: Wire) -> None:
        wire.finish("close", terminate=False)


@dataclass(frozen=True)
class Outage:
    """LMX goes away mid-stream (connections refused) and comes back on the same port,
    maybe with another model set: every change in it is an event nobody received."""

    seconds: float
    models: dict[str, float] | None = None

    def run(self, wire: Wire) -> None:
        wire.outage(self.seconds, self.models)


@dataclass(frozen=True)
class Reply:
    """A whole non-stream response instead of the event stream (401, 429, an HTML page...)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    content_type: str = "application/json"


@dataclass
class Script:
    steps: list[Step] = field(default_factory=list)
    reply: Reply | None = None
    content_type: str | None = SSE_TYPE
    chunked: bool = True
    headers: tuple[tuple[str, str], ...] = ()


def events_script(*steps: Step, chunked: bool = True) -> Script:
    """The usual shape: headers, wait for the snapshot, the steps, a clean end."""
    return Script([AwaitSnapshot(), *steps, End()], chunked=chunked)


def reply(status: int, *headers: tuple[str, str], body: bytes = b"") -> Script:
    return Script(reply=Reply(status, headers, body or b'{"detail": "scripted"}'))


@dataclass
class ConnRecord:
    """What one event-stream connection sent: the soak test's ground truth."""

    index: int
    headers: dict[str, str]
    target: str
    sent: list[Send] = field(default_factory=list)
    lost: list[Effect] = field(default_factory=list)  # state changes never delivered
    ending: str = "running"
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def stayed_open(self) -> bool:
        """Ended by its script's End: every byte of every event went out."""
        return self.ending == "end"
