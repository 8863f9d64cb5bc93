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


# The interval reads of LMX, each reported as a source (opta_exporter_source_*).
SOURCES = (
    "status",
    "memory",
    "health",
    "models",
    "diagnostics",
    "downloads",
    "quantize",
    "relay",
)
STALE_INTERVALS = 2  # a figure whose source failed this many intervals is not exported


@dataclass(frozen=True)
class SourceStatus:
    """One source's last read: whether it succeeded, and when the last success was."""

    interval: float
    up: bool = False
    last_success_wall: float | None = None
    last_success_mono: float | None = None

    def fresh(self, now: float) -> bool:
        return (
            self.last_success_mono is not None
            and now - self.last_success_mono <= STALE_INTERVALS * self.interval
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
    # the last connection that ended, for the live page: "<reason>: <detail>", where the
    # reason is a reconnects_total label and the detail our own words (no URL, no key)
    last_error: str | None = None
    last_error_wall: float | None = None
    # monotonic time of the response headers or the last event, whichever is later:
    # LMX sends no byte until its first event, so the stale timer starts at the headers.
    last_activity: float | None = None
    # the sources this exporter reads (by name); one that is not read is not listed
    sources: dict[str, SourceStatus] = field(default_factory=dict)
    # the long-lived threads by name: whether each runs, and the errors that reached its
    # loop (caught, counted, survived); a thread that ended while the daemon runs is dead
    threads: dict[str, bool] = field(default_factory=dict)
    thread_errors: dict[str, float] = field(default_factory=dict)

    def up(self, now: float) -> bool:
        return (
            self.connection_state == "open"
            and self.last_activity is not None
            and now - self.last_activity <= self.stale_timeout
        )

    def fresh(self, source: str, now: float) -> bool:
        """Whether figures from `source` may be shown: one this exporter does not read
        (a test's bare state) is not judged."""
        status = self.sources.get(source)
        return status is None or status.fresh(now)

    def read_lmx(self) -> bool:
        """Whether any read of LMX has succeeded yet (a snapshot, a polled source)."""
        return self.last_activity is not None or any(
            status.last_success_mono is not None for status in self.sources.values()
        )

    def dead_threads(self) -> list[str]:
        return [name for name, up in self.threads.items() if not up]

    def copy(self) -> ExporterHealth:
        return replace(
            self,
            reconnects=dict(self.reconnects),
            resyncs=dict(self.resyncs),
            sources=dict(self.sources),
            threads=dict(self.threads),
            thread_errors=dict(self.thread_errors),
        )
