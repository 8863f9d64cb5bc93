"""`python -m build` gives an sdist and a wheel that install into a fresh venv and run."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

from opta_exporter import __version__
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def test_sdist_ships_units_dashboards_and_rules(dist: Path) -> None:
    (sdist,) = dist.glob(f"opta_exporter-{__version__}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {
            Path(name).relative_to(f"opta_exporter-{__version__}").as_posix()
            for name in archive.getnames()
            if "/" in name
        }
    assert {
        "systemd/opta-exporter.service",
        "systemd/opta-exporter@.service",
        "README.md",
        "opta_exporter/py.typed",
        "setup.cfg",
    } <= names
    assert (
        any(name.startswith("grafana/") and name.endswith(".json") for name in names)
        or not (ROOT / "grafana").is_dir()
    )
    assert (
        any(name.startswith("prometheus/") for name in names) or not (ROOT / "prometheus").is_dir()
    )


def test_wheel_installs_into_a_fresh_venv_and_runs(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob(f"opta_exporter-{__version__}-py3-none-any.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    out = subprocess.run(
        [str(env_dir / "bin" / "opta-exporter"), "--version"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == f"opta-exporter {__version__}"
    bad = subprocess.run(
        [str(env_dir / "bin" / "opta-exporter"), "--log.level", "loud"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    typed = subprocess.run(
        [
            str(python),
            "-c",
            "import opta_exporter, pathlib; print("
            "(pathlib.Path(opta_exporter.__file__).parent / 'py.typed')"
            ".is_file())",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert typed.stdout.strip() == "True"
