"""The exporter's own health: connection life, reconnects, resyncs. Pure data.

Kept apart from LmxState because it describes this process, not LMX, and is written by
the I/O threads rather than by events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

CONNECTION_STATES = ("connecting", "open", "backoff", "auth_failed", "stopped")
RECONNECT_REASONS = (
    "eof",
    "timeout",
    "stale",
    "http_error",
    "auth",
    "connect_error",
    "protocol",
    "dropped",
)


@dataclass
class ExporterHealth:
    stale_timeout: float = 45.0
    connection_state: str = "connecting"
    backoff_seconds: float = 0.0
    reconnects: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(RECONNECT_REASONS, 0.0)
    )
    resyncs: dict[str, float] = field(default_factory=lambda: {"success": 0.0, "failure": 0.0})
    last_event_wall: float | None = None
    # monotonic time of the response headers or the last event, whichever is later:
    # LMX sends no byte until its first event, so the stale timer starts at the headers.
    last_activity: float | None = None

    def up(self, now: float) -> bool:
        return (
            self.connection_state == "open"
            and self.last_activity is not None
            and now - self.last_activity <= self.stale_timeout
        )

    def copy(self) -> ExporterHealth:
        return replace(self, reconnects=dict(self.reconnects), resyncs=dict(self.resyncs))
