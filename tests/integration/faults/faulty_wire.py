"""The byte level of the fault-injecting LMX: one connection's writes, and HTTP framing.

`Connection` is the `Wire` a script's steps drive (faulty_script.py); it writes
chunks, holds a stream open while watching for the client hanging up, and records what
went out whole in the connection's `ConnRecord`.
"""

from __future__ import annotations

import select
import socket
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from tests.integration.faults.faulty_script import ConnRecord, Effect, Send

if TYPE_CHECKING:
    from tests.integration.faults.faulty_lmx import FaultyLmx

MAX_HEAD = 1 << 16
POLL = 0.02  # how often a held stream looks at its socket and the release flag


class Ended(Exception):
    def __init__(self, ending: str) -> None:
        super().__init__(ending)
        self.ending = ending


class Connection:
    """One `/admin/events` response in progress: the `Wire` a script's steps drive."""

    def __init__(
        self, server: FaultyLmx, sock: socket.socket, record: ConnRecord, chunked: bool
    ) -> None:
        self.server, self.sock, self.record, self.chunked = server, sock, record, chunked
        self.snapshot_mark = server.snapshots
        self.release_mark = server.releases
        self.killed = False

    def send(self, data: bytes) -> None:
        if self.server.stopping.is_set() or self.killed:
            raise Ended("killed")
        self.sock.sendall(data)

    def chunk(self, data: bytes) -> None:
        self.send(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)

    def apply(self, effect: Effect, *, delivered: bool) -> None:
        if self.server.apply(effect) and not delivered:
            with self.server.cond:
                self.record.lost.append(effect)

    def delivered(self, step: Send) -> None:
        with self.server.cond:
            self.record.sent.append(step)

    def await_snapshot(self, timeout: float) -> None:
        self.server.wait(lambda: self.server.snapshots > self.snapshot_mark, timeout)

    def pause(self, seconds: float) -> None:
        self.server.stopping.wait(seconds)

    def hold(self, timeout: float, *, releasable: bool) -> None:
        """Silent and open until released, the client hangs up, or the server stops."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.stopping.is_set() or self.killed:
                raise Ended("killed")
            if releasable and self.server.releases > self.release_mark:
                self.release_mark = self.server.releases  # one release ends one hold
                return
            readable, _, _ = select.select([self.sock], [], [], POLL)
            if readable:
                try:
                    data = self.sock.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    raise Ended("client_closed")
        raise Ended("timeout")

    def outage(self, seconds: float, models: dict[str, float] | None) -> None:
        server = self.server
        server.down()
        if models is not None:
            with server.cond:
                before = dict(server.models)
            for model in before.keys() - models.keys():
                self.apply(Effect("unload", model), delivered=False)
            for model, gb in models.items():
                self.apply(Effect("load", model, gb), delivered=False)
        server.stopping.wait(seconds)
        if not server.stopping.is_set():
            server.up()
        raise Ended("outage")

    def finish(self, ending: str, *, terminate: bool) -> None:
        if terminate and self.chunked:
            self.send(b"0\r\n\r\n")
        raise Ended(ending)


def read_head(sock: socket.socket) -> tuple[str, str, dict[str, str]] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(4096)
        if not more or len(data) > MAX_HEAD:
            return None
        data += more
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, target, _ = [*lines[0].split(" "), "", ""][:3]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


def response(status: int, body: bytes, ctype: str, extra: tuple[tuple[str, str], ...]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Status"
    head = [f"HTTP/1.1 {status} {phrase}", f"Content-Type: {ctype}"]
    head += [f"Content-Length: {len(body)}", "Connection: close", "x-request-id: faulty"]
    head += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
