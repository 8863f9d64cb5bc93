"""--web.systemd-socket: the exporter serves on the socket systemd passes (here passed by
`systemd-socket-activate`, systemd's own tool for it) and binds nothing itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from lmx_simulator import LmxSimulator
from opta_exporter.web.httpd import systemd_sockets
from tests.conftest import WAIT
from tests.helpers import require_tool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serves_on_the_socket_systemd_passes_and_binds_nothing_else() -> None:
    tool = require_tool("systemd-socket-activate", "systemd")
    passed, configured = _free_port(), _free_port()
    with LmxSimulator() as sim:
        proc = subprocess.Popen(
            [tool, "-l", f"127.0.0.1:{passed}", sys.executable, "-m", "opta_exporter",
             "--web.systemd-socket", "--lmx.url", sim.url,
             "--web.listen-address", f"127.0.0.1:{configured}"],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            assert f"Listening on 127.0.0.1:{passed}" in proc.stderr.readline()
            # the first connection starts the exporter, which answers it on that socket
            resp = requests.get(f"http://127.0.0.1:{passed}/metrics", timeout=WAIT)
            assert resp.status_code == 200
            assert "opta_lmx_up" in resp.text
            with pytest.raises(requests.ConnectionError):  # the flag's address: unused
                requests.get(f"http://127.0.0.1:{configured}/metrics", timeout=WAIT)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT) == 0


def test_without_a_passed_socket_it_exits_1_saying_so() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "opta_exporter", "--web.systemd-socket",
         "--lmx.url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "systemd passed no socket" in proc.stderr


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"LISTEN_PID": "1", "LISTEN_FDS": "1"},  # meant for another process
        {"LISTEN_PID": "{pid}", "LISTEN_FDS": "many"},
        {"LISTEN_PID": "{pid}", "LISTEN_FDS": "0"},
    ],
)
def test_no_socket_is_taken_that_was_not_passed_to_this_process(
    environ: dict[str, str],
) -> None:
    env = {key: value.format(pid=os.getpid()) for key, value in environ.items()}
    assert systemd_sockets(env) == []
