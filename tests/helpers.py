"""Small helpers several test files share: a fixture-file SSE reader, tool lookup and
`promtool check metrics`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from opta_exporter.core.state import Snapshot

ROOT = Path(__file__).resolve().parent.parent  # the repository
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# A model load through LMX's /admin/models/load, as a running LMX streams it (protocol page).
LOAD_SEQUENCE = (
    "model_readiness_changed",
    "model_readiness_changed",
    "model_readiness_changed",
    "model_loaded",
    "model_canary_started",
    "model_readiness_changed",
    "model_compatibility_recorded",
    "model_canary_passed",
)


def example_snapshot(models: dict[str, float | None], uptime: float = 5231.4) -> Snapshot:
    """The /admin/status + /admin/memory example of the protocol page, with these models."""
    return Snapshot(
        version="0.1.0",
        uptime_seconds=uptime,
        memory_total_gb=512.0,
        memory_used_gb=61.2,
        memory_available_gb=450.8,
        threshold_percent=90,
        in_flight=1,
        max_concurrent=4,
        models=models,
    )


def read_sse(path: Path) -> list[tuple[str, str]]:
    """The few SSE rules the fixtures need: blocks split by a blank line, `event:` and
    `data:` fields, one optional space after the colon."""
    events = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((name, "\n".join(data)))
    return events


def tool(name: str, package: str) -> str | None:
    """A Debian tool's path. Missing: a failure on CI (.ci/run installs it), else None."""
    path = shutil.which(name)
    if path is None and os.environ.get("CI") == "true":
        pytest.fail(f"{name} is missing in CI: .ci/run installs Debian's `{package}`")
    return path


def require_tool(name: str, package: str) -> str:
    path = tool(name, package)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package `{package}`); CI runs this")
    return path


def promtool_check(text: str, *, required: bool = True) -> None:
    """`promtool check metrics` must accept the exposition with no complaint at all.
    Without promtool: fail on CI, else skip the test (or, if not required, go on)."""
    exe = require_tool("promtool", "prometheus") if required else tool("promtool", "prometheus")
    if exe is None:
        return
    proc = subprocess.run(
        [exe, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), proc.stdout + proc.stderr
