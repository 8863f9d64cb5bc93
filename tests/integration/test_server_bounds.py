"""What a client can hold before it authenticates, measured on a server in a process of
its own: every free connection slot taken by the worst clients (huge headers, headers
trickled a byte at a time, TLS connections that never handshake). The server's peak
memory stays bounded, a scraper's kept connection goes on being served, and a new
scraper gets in once the head or handshake deadline has freed the slots."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opta_exporter.web.httpd import MAX_CONNECTIONS
from tests.conftest import WAIT
from tests.helpers import ROOT

DEADLINE = 1.5  # the head and handshake deadline the server is given (10 s in production)
PEAK_BOUND_KB = 150 * 1024  # the exporter's systemd unit allows 256 MB; idle it is ~35 MB
ATTACKERS = MAX_CONNECTIONS - 1  # the kept scraper holds the last slot


class Served:
    """The server process: its port, its pid, and its peak resident memory."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port

    def peak_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1])


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Served:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.bounds_server", str(DEADLINE), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        procs.append(proc)
        assert proc.stdout is not None
        return Served(proc, int(proc.stdout.readline()))

    yield start
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()  # the server stops itself
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(WAIT)


class Scraper:
    """A kept-alive scraper, as Prometheus keeps its connection between scrapes."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        self.conn: http.client.HTTPConnection = (
            http.client.HTTPSConnection("127.0.0.1", port, timeout=WAIT, context=context)
            if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        )

    def scrape(self) -> bytes:
        self.conn.request("GET", "/metrics")
        resp = self.conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        assert b"opta_lmx_up 0.0" in body
        return body


def refused(port: int) -> bool:
    """A connection past the cap is closed before it is read: an EOF at once. The accept
    queue is first come, first served, so a probe made after the attackers' connects is
    judged after all of them."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        try:
            return sock.recv(1) == b""
        except ConnectionError:
            return True


def wait_admitted(port: int, context: ssl.SSLContext | None = None) -> float:
    """Seconds until a new scraper gets its scrape, retrying refusals (bounded by WAIT)."""
    started = time.monotonic()
    while time.monotonic() - started < WAIT:
        scraper = Scraper(port, context)
        try:
            scraper.scrape()
        except (OSError, http.client.HTTPException):
            continue
        finally:
            scraper.conn.close()
        return time.monotonic() - started
    raise AssertionError(f"no new scraper got in within {WAIT} s")


Attack = Callable[[socket.socket, threading.Event, threading.Semaphore], None]


@contextlib.contextmanager
def attackers(port: int, attack: Attack) -> Iterator[None]:
    """ATTACKERS connections to `port`, each running `attack` in a thread until the block
    ends; the block starts once every attack has said (through the semaphore) that it
    has sent what it came to send."""
    stop, sent = threading.Event(), threading.Semaphore(0)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(ATTACKERS)]

    def run(sock: socket.socket) -> None:
        try:
            attack(sock, stop, sent)
        except OSError:
            sent.release()

    threads = [threading.Thread(target=run, args=(sock,), daemon=True) for sock in socks]
    for thread in threads:
        thread.start()
    try:
        for _ in threads:
            assert sent.acquire(timeout=WAIT)
        yield
    finally:
        stop.set()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(WAIT)


HEADER = b"X-Pad: " + b"v" * (64 * 1024 - 16) + b"\r\n"  # inside the library's line limit


def huge_headers(sock: socket.socket, stop: threading.Event, sent: threading.Semaphore) -> None:
    """99 headers (the library's most) of 64 KiB each, all parsed before auth;
    sent once the server has answered (it has read what it is going to read), then the
    connection is held open."""
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + HEADER * 98 + b"\r\n")
    sock.recv(12)
    sent.release()
    stop.wait(WAIT)


def trickled_headers(sock: socket.socket, stop: threading.Event, sent: threading.Semaphore) -> None:
    """A head just under the size bound, then a byte every tenth of a second, never the
    blank line: the slowloris that also holds as much memory as it may."""
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"v" * 60_000)
    sent.release()
    while not stop.wait(0.1):  # the attack's pace, not a wait for the server
        sock.sendall(b"v")


def test_huge_headers_on_every_slot_keep_memory_bounded(serve: Callable[..., Served]) -> None:
    server = serve()
    kept = Scraper(server.port)
    kept.scrape()
    with attackers(server.port, huge_headers):
        assert server.peak_kb() < PEAK_BOUND_KB, "after every attacker's head was read"
        kept.scrape()
        waited = wait_admitted(server.port)
        peak = server.peak_kb()
    kept.scrape()
    print(f"huge headers: peak RSS {peak / 1024:.0f} MB, a new scrape waited {waited:.2f} s")
    assert peak < PEAK_BOUND_KB


def test_slowloris_on_every_slot_is_cut_at_the_deadline(serve: Callable[..., Served]) -> None:
    server = serve()
    kept = Scraper(server.port)
    kept.scrape()
    with attackers(server.port, trickled_headers):
        assert refused(server.port)  # every slot is taken...
        kept.scrape()  # ...yet the kept connection is served
        waited = wait_admitted(server.port)  # the attack goes on meanwhile
        kept.scrape()
        peak = server.peak_kb()
    print(f"slowloris: peak RSS {peak / 1024:.0f} MB, a new scrape waited {waited:.2f} s")
    assert waited < DEADLINE + WAIT / 2
    assert peak < PEAK_BOUND_KB


def never_handshake(sock: socket.socket, stop: threading.Event, sent: threading.Semaphore) -> None:
    sent.release()
    stop.wait(WAIT)


def test_tls_connections_that_never_handshake_are_cut_at_the_deadline(
    serve: Callable[..., Served], cert: tuple[Path, Path]
) -> None:
    server = serve(*map(str, cert))
    context = ssl.create_default_context(cafile=str(cert[0]))
    kept = Scraper(server.port, context)
    kept.scrape()
    with attackers(server.port, never_handshake):
        assert refused(server.port)
        kept.scrape()
        waited = wait_admitted(server.port, context)
        peak = server.peak_kb()
    kept.scrape()
    print(f"TLS, no handshake: peak RSS {peak / 1024:.0f} MB, a new scrape waited {waited:.2f} s")
    assert waited < DEADLINE + WAIT / 2
    assert peak < PEAK_BOUND_KB
