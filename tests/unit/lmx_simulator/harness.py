"""A raw-socket client for the simulator, so chunk boundaries and silences are visible
(silences are checked with socket timeouts, never with sleeps), and a harness that stops
and closes everything it started."""

from __future__ import annotations

import json
import socket
from typing import Any

from lmx_simulator import LmxSimulator
from tests.helpers import LMX_EVENT_TYPES

__all__ = ["LMX_EVENT_TYPES", "Harness", "event"]


class RawClient:
    """A minimal HTTP/1.1 client that shows chunk boundaries and times out cleanly."""

    def __init__(
        self,
        port: int,
        path: str = "/admin/events",
        headers: dict[str, str] | None = None,
        rcvbuf: int | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(3.0)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, *header_lines = self.read_until(b"\r\n\r\n").decode().split("\r\n")
        self.status = int(status.split()[1])
        pairs = [line.split(":", 1) for line in header_lines if line]
        self.headers = {k.strip().lower(): v.strip() for k, v in pairs}

    def _fill(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError
        self.buf += data

    def read_until(self, sep: bytes) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            self._fill()
        out = bytes(self.buf[: i + len(sep)])
        del self.buf[: i + len(sep)]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_chunk(self) -> bytes:
        """One HTTP chunk's payload; b"" is the terminating chunk."""
        size = int(self.read_until(b"\r\n")[:-2], 16)
        data = self.read_exact(size)
        assert self.read_exact(2) == b"\r\n"
        return data

    def read_to_eof(self) -> bytes:
        """Everything left until the server closes (a socket timeout fails the test)."""
        try:
            while True:
                self._fill()
        except (EOFError, ConnectionResetError):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def close(self) -> None:
        self.sock.close()


class Harness:
    """Starts simulators and clients, and stops/closes every one of them at teardown."""

    def __init__(self) -> None:
        self.sims: list[LmxSimulator] = []
        self.clients: list[RawClient] = []

    def sim(self, **kwargs: Any) -> LmxSimulator:
        sim = LmxSimulator(**kwargs)
        self.sims.append(sim)
        sim.start()
        return sim

    def client(self, sim: LmxSimulator, path: str = "/admin/events", **kwargs: Any) -> RawClient:
        client = RawClient(sim.port, path, **kwargs)
        self.clients.append(client)
        return client


def event(chunk: bytes) -> tuple[str, dict[str, Any]]:
    """(event type, data) of one named event's chunk."""
    head, data = chunk.decode().rstrip("\n").split("\n")
    return head.removeprefix("event: "), json.loads(data.removeprefix("data: "))
