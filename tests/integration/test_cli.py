"""The real process: starts, serves, logs without the key, stops on SIGTERM with exit 0."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from lmx_simulator import LmxSimulator
from opta_exporter import __version__
from tests.conftest import WAIT

SERVING = re.compile(r"serving \S+ on ((?:\S+:\d+)(?:, \S+:\d+)*), following")


def _start_all(args: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    """Start the exporter and read its log until the stream is open: the process and
    every address it says it serves on (`127.0.0.1:port`, `[::1]:port`)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "opta_exporter", *args], stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    addresses: list[str] = []
    for line in proc.stderr:
        match = SERVING.search(line)
        addresses = match.group(1).split(", ") if match else addresses
        if "event stream open" in line and addresses:
            return proc, addresses
    proc.wait(WAIT)
    pytest.fail(f"exporter exited early with {proc.returncode}")


def _start(args: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc, addresses = _start_all(args)
    return proc, int(addresses[0].rpartition(":")[2])


def _scrape_until(port: int, line: str) -> str:
    """Scrape until `line` is in the text: bounded by WAIT, each scrape a real GET."""
    deadline = time.monotonic() + WAIT
    text = ""
    while time.monotonic() < deadline:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=WAIT).text
        if line in text:
            return text
    pytest.fail(f"{line!r} not scraped within {WAIT} s; last scrape:\n{text}")


def test_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("proc-secret-key\n")
    with LmxSimulator(admin_key="proc-secret-key") as sim:
        sim.load_model("m", memory_gb=1.0)
        proc, port = _start(
            [
                "--lmx.url",
                sim.url,
                "--web.listen-address",
                "127.0.0.1:0",
                "--lmx.admin-key-file",
                str(key_file),
                "--log.level",
                "debug",
            ]
        )
        try:
            # the format comes from /admin/diagnostics, read on its own after start
            text = _scrape_until(port, 'opta_lmx_model_loaded{format="mlx",model="m"} 1.0')
            assert (
                f'opta_exporter_build_info{{python_version="{sys.version.split()[0]}"'
                f',version="{__version__}"}} 1.0' in text
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT) == 0
        assert proc.stderr is not None
        rest = proc.stderr.read()
        assert "stopping" in rest
        assert "proc-secret-key" not in rest


def _refused(args: list[str], env: dict[str, str] | None = None) -> tuple[str, str]:
    """Run the exporter with a bad configuration: it must exit 2 with one stderr line.
    Returns (that line, everything it printed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "opta_exporter", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        env=env,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    return lines[0], proc.stderr + proc.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--web.listen-address", "nope"], "--web.listen-address"),
        (["--lmx.url", "ftp://x"], "--lmx.url"),
        (["--lmx.url", "http://user:pw@host:1"], "credentials"),
        (["--backoff.base=-1s"], "--backoff.base"),
        (["--log.format", "xml"], "--log.format"),
        (["--lmx.admin-key-file", "/nonexistent/key"], "cannot read"),
    ],
)
def test_invalid_config_exits_2_with_one_line(args: list[str], fragment: str) -> None:
    assert fragment in _refused(args)[0]


@pytest.mark.parametrize("source", ["file", "env"])
def test_unsendable_admin_key_exits_2_without_printing_it(tmp_path: Path, source: str) -> None:
    """A key no header can carry is refused at load, not by every read of LMX later."""
    key, env, args = "proc-secret-\u2713-key", dict(os.environ), []
    if source == "file":
        (tmp_path / "key").write_text(key + "\n", encoding="utf-8")
        args = ["--lmx.admin-key-file", str(tmp_path / "key")]
    else:
        env["OPTA_LMX_ADMIN_KEY"] = key
    line, printed = _refused(args, env)
    assert "outside Latin-1" in line
    assert "proc-secret" not in printed


def test_env_twin_configures_the_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "opta_exporter"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        env={**os.environ, "OPTA_EXPORTER_WINDOW_DURATION": "zero"},
    )
    assert proc.returncode == 2
    assert "--window.duration" in proc.stderr


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "opta_exporter", "--version"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    first, *rest = out.stdout.splitlines()
    assert first == f"opta-exporter, version {__version__} (revision: unknown)"
    assert [line.split(":")[0].strip() for line in rest] == [
        "build date",
        "python version",
        "platform",
    ]


def test_version_says_the_revision_the_build_set() -> None:
    env = {**os.environ, "OPTA_EXPORTER_BUILD_REVISION": "0123abc"}
    out = subprocess.run(
        [sys.executable, "-m", "opta_exporter", "--version"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
        env=env,
    )
    assert "(revision: 0123abc)" in out.stdout.splitlines()[0]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_the_process_serves_on_every_listen_address_and_stops() -> None:
    """Repeated --web.listen-address: one server each, all answering (the second no
    longer silently replaces the first), self-metrics off with the switch."""
    with LmxSimulator() as sim:
        proc, addresses = _start_all(
            [
                "--lmx.url",
                sim.url,
                "--web.listen-address",
                "127.0.0.1:0",
                "--web.listen-address",
                "[::1]:0",
                "--web.disable-exporter-metrics",
            ]
        )
        try:
            assert [a.rpartition(":")[0] for a in addresses] == ["127.0.0.1", "[::1]"]
            for address in addresses:
                answer = requests.get(f"http://{address}/metrics", timeout=WAIT)
                assert answer.ok
                assert "opta_lmx_up" in answer.text
                assert "process_" not in answer.text
                assert "python_info" not in answer.text
                assert requests.get(f"http://{address}/-/healthy", timeout=WAIT).text == (
                    "healthy\n"
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT) == 0


def test_sighup_is_ignored_with_a_line_and_sigterm_still_exits_0() -> None:
    """SIGHUP's default action is death, which systemd's Restart=on-failure does not undo."""
    with LmxSimulator() as sim:
        proc, port = _start(["--lmx.url", sim.url, "--web.listen-address", "127.0.0.1:0"])
        assert proc.stderr is not None
        lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.put(line)
            lines.put(None)  # the process closed stderr: it has ended

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def next_hup_line() -> str:
            while (line := lines.get(timeout=WAIT)) is not None:
                if "SIGHUP" in line:
                    return line
            proc.wait(WAIT)
            pytest.fail(f"the exporter ended on SIGHUP with {proc.returncode}")

        try:
            for _ in range(2):  # one at a time: two pending SIGHUPs would merge into one
                proc.send_signal(signal.SIGHUP)
                assert "ignored" in next_hup_line()
                assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=WAIT).ok
            assert proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT) == 0
        reader.join(WAIT)
        rest = []
        while (line := lines.get(timeout=WAIT)) is not None:
            rest.append(line)
        assert any("stopping" in line for line in rest)
