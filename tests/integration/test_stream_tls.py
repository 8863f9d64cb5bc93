"""An LMX behind TLS (a remote LMX, or one behind a TLS proxy): the stream's own chunked
decoding reads the TLS connection's reader as it reads a plain one."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from lmx_simulator import LmxSimulator
from opta_exporter.daemon import Exporter
from opta_exporter.stream import transport as wire
from opta_exporter.stream.chunked import dechunk
from tests.conftest import WAIT, is_open, wait_for

MakeExporter = Callable[..., Exporter]


class TlsFront:
    """TLS on a loopback port in front of a plain server: each connection is piped both
    ways until either side closes."""

    def __init__(self, target: tuple[str, int], cert: Path, key: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(WAIT)
            try:
                tls = self._context.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                continue
            tls.settimeout(None)
            upstream = socket.create_connection(self._target, timeout=WAIT)
            upstream.settimeout(None)
            self._sockets += [tls, upstream]
            for a, b in ((tls, upstream), (upstream, tls)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError, ValueError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(WAIT)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def tls_lmx(
    sim: LmxSimulator, cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The simulator behind TLS; requests trusts the test certificate."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert[0]))
    port = int(sim.url.rsplit(":", 1)[1])
    front = TlsFront(("127.0.0.1", port), *cert)
    yield f"https://127.0.0.1:{front.port}"
    front.close()


def test_events_arrive_whole_over_tls_and_stop_cuts_the_read(
    sim: LmxSimulator, tls_lmx: str, make_exporter: MakeExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[bytes] = []

    def spy(reads: Iterable[bytes]) -> Iterator[bytes]:
        for payload in dechunk(reads):
            decoded.append(payload)
            yield payload

    monkeypatch.setattr(wire, "dechunk", spy)
    exporter = make_exporter(sim, lmx_url=tls_lmx)
    wait_for(exporter, is_open)
    sim.load_model("over-tls", fmt="gguf")
    for duration in (0.1, 0.2, 0.3):
        sim.publish("model_canary_passed", {"model_id": "over-tls", "duration_sec": duration})
    wait_for(exporter, lambda s, h: s.canaries["passed"] == 4)  # the load's own, and these
    assert exporter.store.view().state.loaded["over-tls"] == "gguf"
    assert b"".join(decoded).count(b"event: model_canary_passed") == 4  # our decoder's reads
    for thread in exporter._threads:  # stop() must end the blocked TLS read
        assert thread.is_alive()
    exporter.stop()
    assert not any(thread.is_alive() for thread in exporter._threads)
