"""`opta-exporter --check` against the simulator: what works, what does not, exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lmx_simulator import LmxSimulator
from opta_exporter.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["--check", *args])
    return code, capsys.readouterr().out.strip().splitlines()


def test_check_passes_against_the_simulator(
    make_sim: Callable[..., LmxSimulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = make_sim(admin_key="check-key")
    sim.load_model("m", memory_gb=1.0)
    key = tmp_path / "key"
    key.write_text("check-key")
    code, lines = run(capsys, "--lmx.url", sim.url, "--lmx.admin-key-file", str(key))
    assert code == 0
    assert [line.split()[0] for line in lines] == ["ok"] * 4
    assert "LMX 0.1.0, 1 model(s) loaded" in lines[1]
    assert "handshake" in lines[2]
    assert "/admin/metrics" in lines[3]
    assert all("check-key" not in line for line in lines)


def test_check_names_the_refused_key(
    make_sim: Callable[..., LmxSimulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = make_sim(admin_key="right")
    monkeypatch.setenv("OPTA_LMX_ADMIN_KEY", "wrong-one")
    code, lines = run(capsys, "--lmx.url", sim.url, "--lmx.relay-interval", "0")
    assert code == 1
    assert len(lines) == 3  # no relay line when the relay is off
    assert lines[1].startswith("FAIL")
    assert "admin key refused" in lines[1]
    assert lines[2].startswith("FAIL")
    assert "/admin/events" in lines[2]
    assert all("wrong-one" not in line for line in lines)


def test_check_fails_when_lmx_is_down(
    make_sim: Callable[..., LmxSimulator], capsys: pytest.CaptureFixture[str]
) -> None:
    sim = make_sim()
    url = sim.url
    sim.stop()
    code, lines = run(capsys, "--lmx.url", url)
    assert code == 1
    assert sum(line.startswith("FAIL") for line in lines) == 3
