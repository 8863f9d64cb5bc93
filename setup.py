"""Metadata lives in setup.cfg; this file only bakes the build's revision and date into
the package (opta_exporter/build_info.json, read by `--version`), as Prometheus' own tools
carry theirs: Python has no linker flags, and the exporter never runs git itself.

The revision is OPTA_EXPORTER_BUILD_REVISION if set, else the checkout's `git rev-parse
HEAD`; the date is SOURCE_DATE_EPOCH's (reproducible builds) or now. An sdist carries the
file, so a wheel built from it keeps the revision of the checkout the sdist came from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
INFO = Path("opta_exporter") / "build_info.json"


def _revision() -> str | None:
    if os.environ.get("OPTA_EXPORTER_BUILD_REVISION"):
        return os.environ["OPTA_EXPORTER_BUILD_REVISION"]
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, this checkout only
            [git, "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _write_info(folder: Path) -> None:
    revision = _revision()
    if revision is None:
        return  # no checkout (a wheel from an sdist): the sdist's file is kept
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    target = folder / INFO
    target.parent.mkdir(parents=True, exist_ok=True)
    info = {"revision": revision, "date": when.strftime("%Y%m%d-%H:%M:%S")}
    target.write_text(json.dumps(info) + "\n", encoding="utf-8")


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            _write_info(Path(self.build_lib))


class Sdist(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        _write_info(Path(base_dir))


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
