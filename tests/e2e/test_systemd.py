"""The units verify and stay hardened: `systemd-analyze verify` and `security --offline`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, require_tool

UNITS = ROOT / "systemd"
MAX_EXPOSURE = 2.0


def _analyze() -> str:
    return require_tool("systemd-analyze", "systemd")


def _installed_copy(unit: str, tmp_path: Path) -> Path:
    """The unit as installed, but starting this checkout's exporter (verify checks it)."""
    exporter = Path(sys.executable).with_name("opta-exporter")
    name = unit.replace("@.", "@test.")
    text = (UNITS / unit).read_text()
    copy = tmp_path / name
    copy.write_text(re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={exporter}", text))
    return copy


def _verifies(unit: Path) -> None:
    result = subprocess.run(
        [_analyze(), "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@pytest.mark.parametrize("unit", ["opta-exporter.service", "opta-exporter@.service"])
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    _verifies(_installed_copy(unit, tmp_path))


@pytest.mark.parametrize("unit", ["opta-exporter.service", "opta-exporter@.service"])
def test_exposure_score_is_low(unit: str, tmp_path: Path) -> None:
    tool = _analyze()
    result = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(_installed_copy(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


@pytest.mark.parametrize("unit", ["opta-exporter.service", "opta-exporter@.service"])
def test_unit_reads_the_key_as_a_credential(unit: str) -> None:
    text = (UNITS / unit).read_text()
    assert re.search(r"(?m)^LoadCredential=admin-key:", text)
    assert "ADMIN_KEY=" not in text  # never the key itself in a unit
    for setting in (
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "Restart=on-failure",
    ):
        assert setting in text


def test_socket_unit_verifies_and_hands_its_socket_to_the_service(tmp_path: Path) -> None:
    """opta-exporter.socket beside the service it starts (verify checks both)."""
    _installed_copy("opta-exporter.service", tmp_path)
    socket_unit = tmp_path / "opta-exporter.socket"
    socket_unit.write_text((UNITS / "opta-exporter.socket").read_text())
    _verifies(socket_unit)
    text = socket_unit.read_text()
    assert re.search(r"(?m)^ListenStream=11234$", text)
    assert "OPTA_EXPORTER_WEB_SYSTEMD_SOCKET=true" in text  # says how the service uses it
