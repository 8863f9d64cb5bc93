"""The real process: starts, serves, logs without the key, stops on SIGTERM with exit 0."""

from __future__ import annotations

import os
import queue
import re
import signal
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


def _start(args: list[str]) -> tuple[subprocess.Popen[str], int]:
    """Start the exporter and read its log until the stream is open."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "opta_exporter", *args], stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    port = None
    for line in proc.stderr:
        match = re.search(r"on port (\d+)", line)
        port = int(match.group(1)) if match else port
        if "event stream open" in line and port is not None:
            return proc, port
    proc.wait(WAIT)
    pytest.fail(f"exporter exited early with {proc.returncode}")


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
    assert out.stdout.strip() == f"opta-exporter {__version__}"


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
