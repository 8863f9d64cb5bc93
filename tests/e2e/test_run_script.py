"""`scripts/run`: the demo stops when the simulator cannot listen (LM Studio also takes 1234
on a Mac) and says the address the exporter really serves. Loopback only, bounded.

The script runs in a copy of the tree whose `.venv/bin` wraps this checkout's Python and
exporter (so it never reinstalls the shared venv); the exporter's wrapper leaves a marker
when started."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "run", tmp_path / "scripts" / "run")
    (tmp_path / "lmx_simulator").symlink_to(ROOT / "lmx_simulator")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    exporter = Path(sys.executable).with_name("opta-exporter")
    wrappers = {
        "python": f'exec "{sys.executable}" "$@"',
        "opta-exporter": f'touch "{tmp_path}/exporter-started"\nexec "{exporter}" "$@"',
    }
    for name, body in wrappers.items():
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    (tmp_path / ".venv" / ".installed-run").touch()  # no setup.cfg here: never reinstalls
    return tmp_path


def _env(sim_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTA_")}
    return env | {"OPTA_SIMULATOR_PORT": str(sim_port), "PYTHONPATH": str(ROOT)}


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another server holds, as LM Studio holds 1234."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_taken_simulator_port_stops_the_demo_before_the_exporter(
    tree: Path, taken_port: int
) -> None:
    result = subprocess.run(
        [str(tree / "scripts" / "run"), "--web.listen-address", f"127.0.0.1:{_free_port()}"],
        env=_env(taken_port),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{taken_port}" in result.stderr
    assert "LM Studio" in result.stderr
    assert "Metrics:" not in result.stdout
    assert not (tree / "exporter-started").exists()


def test_the_demo_says_the_address_passed_through(tree: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(tree / "scripts" / "run"), f"--web.listen-address=127.0.0.1:{port}"],
        env=_env(_free_port()),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: stopped whole below
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        lines: list[str] = []
        while time.monotonic() < deadline and not any("Metrics:" in x for x in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert f"Metrics: http://127.0.0.1:{port}/metrics" in "".join(lines), lines
        assert any(x.startswith("LMX simulator on http://127.0.0.1:") for x in lines)
        assert _answers(port, deadline)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def _answers(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False
