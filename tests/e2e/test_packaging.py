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
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The dist folder and what the build said."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out, result.stdout + result.stderr


@pytest.fixture(scope="module")
def dist(built: tuple[Path, str]) -> Path:
    return built[0]


def test_manifest_matches_the_tree(built: tuple[Path, str]) -> None:
    """Every MANIFEST.in line finds files: a stale pattern is a build warning."""
    _, log = built
    assert "reading manifest template 'MANIFEST.in'" in log
    assert "no files found" not in log
    assert "no previously-included files" not in log


def test_license_and_project_urls_ship(dist: Path) -> None:
    (sdist,) = dist.glob(f"opta_exporter-{__version__}.tar.gz")
    (wheel,) = dist.glob(f"opta_exporter-{__version__}-py3-none-any.whl")
    top = f"opta_exporter-{__version__}"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
        pkg_info = archive.extractfile(f"{top}/PKG-INFO")
        assert pkg_info is not None
        sdist_meta = pkg_info.read().decode()
    assert {f"{top}/LICENSE", f"{top}/CHANGELOG.md"} <= names
    with zipfile.ZipFile(wheel) as archive:
        licenses = [n for n in archive.namelist() if n.endswith("/LICENSE") and ".dist-info/" in n]
        meta = archive.read(f"{top}.dist-info/METADATA").decode()
    assert licenses, "LICENSE is not in the wheel's .dist-info"
    for text in (meta, sdist_meta):
        assert "License-File: LICENSE" in text
        for label in ("Homepage", "Source", "Changelog"):
            assert f"Project-URL: {label}, https://github.com/" in text
    assert "MIT License" in (ROOT / "LICENSE").read_text()


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
        "LICENSE",
        "launchd/com.opta.exporter.plist",
        "deploy/Containerfile",
        "deploy/compose/compose.yaml",
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
    first_line = out.stdout.splitlines()[0]  # `opta-exporter, version X (revision: ...)`
    assert first_line.startswith("opta-exporter")
    assert __version__ in first_line
    if (ROOT / ".git").exists():  # the build baked the checkout's revision, via the sdist
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        assert f"(revision: {head})" in first_line
        assert "build date:       unknown" not in out.stdout
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
