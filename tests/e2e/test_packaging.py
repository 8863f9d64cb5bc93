"""`python -m build` gives an sdist and a wheel that install into a fresh venv and run."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
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


def test_wheel_holds_the_exporter_and_not_the_simulator(dist: Path) -> None:
    """The simulator is a test and demo tool: in the sdist, never installed as a package."""
    (wheel,) = dist.glob(f"opta_exporter-{__version__}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        modules = {name for name in archive.namelist() if name.endswith(".py")}
    source = {path.relative_to(ROOT).as_posix() for path in (ROOT / "opta_exporter").rglob("*.py")}
    assert modules == source  # every subpackage, nothing else
    assert not any("simulator" in name for name in modules)


def test_sdist_ships_the_simulator_for_the_demo_and_tests(dist: Path) -> None:
    (sdist,) = dist.glob(f"opta_exporter-{__version__}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {Path(name).as_posix().partition("/")[2] for name in archive.getnames()}
    simulator = {
        path.relative_to(ROOT).as_posix() for path in (ROOT / "lmx_simulator").glob("*.py")
    }
    assert simulator <= names
    assert "lmx_simulator/__main__.py" in simulator
    assert {"docs/metrics.md", "docs/architecture.md"} <= names
