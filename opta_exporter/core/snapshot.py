"""/admin/status + /admin/memory bodies -> Snapshot, tolerant of LMX's variations.

Pure: the reader (readers/snapshots.py) fetches, this reads. A field of the wrong type is
treated as absent, never as zero, so a malformed body cannot make a figure lie.
"""

from __future__ import annotations

from typing import Any

from opta_exporter.core.labels import usable_text
from opta_exporter.core.readings import real
from opta_exporter.core.state import Snapshot

_HUGE = 2.0**53


def _num(mapping: dict[str, Any], key: str) -> float | None:
    """A finite non-negative number; GB figures are scaled to bytes later, so one that
    would overflow there (>= 2^53 GB, no machine's) is absent too."""
    value = real(mapping.get(key))
    return value if value is not None and 0 <= value < _HUGE else None


def parse_snapshot(status: dict[str, Any], memory: dict[str, Any]) -> Snapshot:
    """Tolerant: a field of the wrong type is treated as absent, never as zero."""
    mem = status.get("memory") if isinstance(status.get("memory"), dict) else {}
    assert isinstance(mem, dict)
    per_model = memory.get("models") if isinstance(memory.get("models"), dict) else {}
    assert isinstance(per_model, dict)
    listed = status.get("models")
    if isinstance(listed, list):
        ids = [m for m in listed if usable_text(m)]
    else:
        ids = [
            m
            for m, info in per_model.items()
            if usable_text(m) and isinstance(info, dict) and info.get("loaded") is not False
        ]
    models = {
        m: _num(per_model[m], "memory_gb") if isinstance(per_model.get(m), dict) else None
        for m in ids
    }
    version = status.get("version")
    return Snapshot(
        version=version if usable_text(version) else None,
        uptime_seconds=_num(status, "uptime_seconds"),
        memory_total_gb=_num(memory, "total_unified_memory_gb") or _num(mem, "total_gb"),
        memory_used_gb=_num(memory, "used_gb") if "used_gb" in memory else _num(mem, "used_gb"),
        memory_available_gb=(
            _num(memory, "available_gb") if "available_gb" in memory else _num(mem, "available_gb")
        ),
        threshold_percent=_num(memory, "threshold_percent") or _num(mem, "threshold_percent"),
        in_flight=_num(status, "in_flight_requests"),
        max_concurrent=_num(status, "max_concurrent_requests"),
        models=models,
    )
