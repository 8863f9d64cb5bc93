"""Small helpers several test files share: the repository root and the fixtures folder,
LMX's load sequence and snapshot bodies, a fixture-file SSE reader, an exposition read back
as samples, tool lookup and `promtool check metrics`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opta_exporter.core.state import Snapshot

ROOT = Path(__file__).resolve().parent.parent  # the repository
LMX = "http://lmx.test:1234"  # an LMX only `responses` answers
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# basic_auth_users' bcrypt hash of the password "s3cret" (few rounds: fast, for tests only).
S3CRET_HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
# An exposition read back: {(sample name, sorted labels): value}.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# Every event type a running LMX sends (its protocol, less the types only its docstrings
# promise): the simulator's stream and the exporter's handler table are held to it.
LMX_EVENT_TYPES = frozenset({
    "model_loaded",
    "model_unloaded",
    "model_canary_started",
    "model_canary_passed",
    "model_canary_failed",
    "model_readiness_changed",
    "model_compatibility_recorded",
    "model_ttl_evicted",
    "download_completed",
    "download_failed",
    "download_cancelled",
    "quantize_progress",
    "config_reloaded",
    "heartbeat",
})  # fmt: skip

COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")

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


# The /admin/status and /admin/memory bodies of a running LMX with two models loaded.
STATUS: dict[str, Any] = {
    "version": "0.1.0",
    "uptime_seconds": 100.0,
    "loaded_models": 2,
    "models": ["a", "b"],
    "memory": {
        "total_gb": 512.0,
        "used_gb": 61.2,
        "available_gb": 450.8,
        "usage_percent": 12.0,
        "threshold_percent": 90,
    },
    "in_flight_requests": 1,
    "max_concurrent_requests": 4,
}
MEMORY: dict[str, Any] = {
    "total_unified_memory_gb": 512.0,
    "used_gb": 61.2,
    "available_gb": 450.8,
    "threshold_percent": 90,
    "models": {"a": {"memory_gb": 4.5, "loaded": True}, "b": {"memory_gb": 2, "loaded": True}},
}


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


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
