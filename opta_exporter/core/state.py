"""What the exporter knows about LMX: built from events, corrected by snapshots.

Pure data and rules, no I/O and no lock: the caller serialises access (see store.py).
Per-model gauges live in dicts keyed by model id so an unload or a reconciliation
removes the model's series outright, as the contract asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opta_exporter.core.events import ERROR_REASONS
from opta_exporter.core.histogram import HistogramFamily
from opta_exporter.core.labels import ModelCap, OpenSet
from opta_exporter.core.readings import DiagnosticsReading, Download, HealthReading
from opta_exporter.core.throughput import Throughput, TokenCount

GIB = 1024.0**3
UNLOAD_REASONS_ALL = ("manual", "ttl", "lru", "canary_failed", "other")

# Per-model gauge families: a model's series in these vanish when the model goes away.
MODEL_GAUGES = (
    "opta_lmx_model_loaded",
    "opta_lmx_model_memory_bytes",
    "opta_lmx_model_readiness",
    "opta_lmx_model_crashes",
)


@dataclass(frozen=True)
class Snapshot:
    """/admin/status + /admin/memory, already in LMX's units (GB, percent)."""

    version: str | None = None
    uptime_seconds: float | None = None
    memory_total_gb: float | None = None
    memory_used_gb: float | None = None
    memory_available_gb: float | None = None
    threshold_percent: float | None = None
    in_flight: float | None = None
    max_concurrent: float | None = None
    models: dict[str, float | None] = field(default_factory=dict)


def _bounded(table: Mapping[str, str], first: Mapping[str, object], limit: int) -> dict[str, str]:
    """At most `limit` entries of `table`, those of models in `first` (loaded) first: a
    body listing 300k ids must not become 300k remembered entries."""
    kept = {m: v for m, v in table.items() if m in first}
    for m, v in table.items():
        if len(kept) >= limit:
            break
        kept.setdefault(m, v)
    return kept


def _zeros(*keys: str) -> dict[str, float]:
    return dict.fromkeys(keys, 0.0)


@dataclass
class LmxState:
    max_models: int = 100
    window_duration: float = 300.0  # seconds of throughput samples kept
    version: str | None = None
    start_time: float | None = None
    memory_total: float | None = None
    memory_used: float | None = None
    memory_available: float | None = None
    memory_threshold: float | None = None
    in_flight: float | None = None
    max_concurrent: float | None = None
    health: HealthReading | None = None  # the last /admin/health read
    diagnostics: DiagnosticsReading | None = None  # the last /admin/diagnostics read
    shedding: bool = False  # LMX answered a read 503 `overloaded` and none succeeded since
    loaded: dict[str, str] = field(default_factory=dict)  # model -> format
    model_memory: dict[str, float] = field(default_factory=dict)
    readiness: dict[str, str] = field(default_factory=dict)
    # the last /admin/diagnostics formats and /admin/models readiness: a model that a
    # snapshot adds after those reads gets them at once, not one read interval later
    formats: dict[str, str] = field(default_factory=dict)
    listed_readiness: dict[str, str] = field(default_factory=dict)
    crashes: dict[str, float] = field(default_factory=dict)
    downloads_running: tuple[Download, ...] = ()  # the last /admin/models/downloads read
    quantize_listed: dict[str, float] = field(default_factory=dict)  # /admin/quantize by status
    events: dict[str, float] = field(default_factory=dict)
    loads: dict[tuple[str, str], float] = field(default_factory=dict)
    unloads: dict[str, float] = field(default_factory=lambda: _zeros(*UNLOAD_REASONS_ALL))
    canaries: dict[str, float] = field(default_factory=lambda: _zeros("passed", "failed"))
    compat: dict[tuple[str, str], float] = field(default_factory=dict)
    downloads: dict[str, float] = field(
        default_factory=lambda: _zeros("completed", "failed", "cancelled")
    )
    quantize_jobs: dict[str, float] = field(
        default_factory=lambda: _zeros("completed", "failed", "cancelled")
    )
    config_reloads: float = 0.0
    load_duration: HistogramFamily = field(
        default_factory=lambda: HistogramFamily((0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300))
    )
    canary_duration: HistogramFamily = field(
        default_factory=lambda: HistogramFamily((0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
    )
    download_duration: HistogramFamily = field(
        default_factory=lambda: HistogramFamily((1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
    )
    event_errors: dict[str, float] = field(default_factory=lambda: _zeros(*ERROR_REASONS))
    state_drift: float = 0.0
    seq: int = 0  # events applied; orders events against snapshots
    synced: bool = False  # a first snapshot fills an empty state: that is not drift
    model_seq: dict[str, int] = field(default_factory=dict)
    readiness_seq: dict[str, int] = field(default_factory=dict)  # last readiness event
    open_labels: dict[str, OpenSet] = field(default_factory=dict)
    throughput: Throughput = field(init=False)  # the relay's token counts and windows
    cap: ModelCap = field(init=False)

    def __post_init__(self) -> None:
        self.throughput = Throughput(self.window_duration, self._keep())
        self.cap = ModelCap(self.max_models)

    def _keep(self) -> int:
        """How many entries a bookkeeping table (order marks, the last formats and
        readiness read) holds at most: a few times the model cap, whatever LMX sends and
        whether or not snapshots succeed."""
        return max(4 * self.max_models, 64)

    def _mark(self, model: str) -> None:
        """The model's order mark (the event count when an event last touched it). The
        oldest mark goes first past the bound: it is the least likely to race with a
        snapshot, which only cares about marks newer than its request."""
        marks = self.model_seq
        marks.pop(model, None)
        marks[model] = self.seq
        if len(marks) > self._keep():
            del marks[next(iter(marks))]

    # -- model presence, shared by events and snapshots --------------------------------
    def add_model(self, model: str, fmt: str, memory_gb: float | None) -> None:
        if fmt == "unknown":
            fmt = self.formats.get(model, fmt)
        if model in self.loaded:
            if fmt != "unknown":
                self.loaded[model] = fmt
        elif self.cap.admit("opta_lmx_model_loaded", model):
            self.loaded[model] = fmt
        if memory_gb and self.cap.admit("opta_lmx_model_memory_bytes", model):
            self.model_memory[model] = memory_gb * GIB
        self._mark(model)

    def remove_model(self, model: str) -> None:
        for table in (self.loaded, self.model_memory, self.readiness, self.crashes):
            table.pop(model, None)
        self.readiness_seq.pop(model, None)
        for metric in MODEL_GAUGES:
            self.cap.release(metric, model)
        self._mark(model)

    def reconcile(self, snap: Snapshot, now: float, since_seq: int) -> int:
        """Apply a snapshot taken after event number `since_seq`; return the drift.

        A model an event touched after the snapshot was requested is left alone: the
        event is newer than the snapshot, so disagreeing there is not lost data.
        """
        self.apply_snapshot_gauges(snap, now)
        settled = [m for m, s in self.model_seq.items() if s <= since_seq]
        drift = 0
        for model in [m for m in self.loaded if m not in snap.models]:
            if self.model_seq.get(model, -1) <= since_seq:
                self.remove_model(model)
                drift += 1
        for model, memory_gb in snap.models.items():
            if self.model_seq.get(model, -1) > since_seq:
                continue
            missing = model not in self.loaded
            self.add_model(model, self.loaded.get(model, "unknown"), memory_gb)
            # A model the cap refuses stays missing: that is no lost event, and counting
            # it would resubscribe at every snapshot.
            drift += missing and model in self.loaded
        self._fill_readiness()
        for model in settled:  # forget order marks nobody can race with any more
            if model not in self.loaded and self.model_seq.get(model, -1) <= since_seq:
                self.model_seq.pop(model, None)  # the bound may have taken it already
        if not self.synced:
            self.synced = True
            return 0
        self.state_drift += drift
        return drift

    def reconcile_readiness(self, readiness: dict[str, str], since_seq: int) -> int:
        """/admin/models, read after event number `since_seq`: the readiness of every
        loaded model, also of one loaded before the exporter started or whose event was
        lost. A model a readiness event touched since is left to the event. A state that
        disagrees counts as drift; one filled where none was known does not (the model
        may have loaded before the exporter started)."""
        self.listed_readiness = _bounded(readiness, self.loaded, self._keep())
        drift = 0
        for model, state in readiness.items():
            if model not in self.loaded or self.readiness_seq.get(model, -1) > since_seq:
                continue
            if self.readiness.get(model) != state and self.cap.admit(
                "opta_lmx_model_readiness", model
            ):
                drift += model in self.readiness
                self.readiness[model] = state
        self.state_drift += drift
        return drift

    def _fill_readiness(self) -> None:
        """Readiness from the last /admin/models read for a loaded model that has none:
        never over a state an event set."""
        for model, state in self.listed_readiness.items():
            if (
                model in self.loaded
                and model not in self.readiness
                and self.cap.admit("opta_lmx_model_readiness", model)
            ):
                self.readiness[model] = state

    def apply_downloads(self, downloads: tuple[Download, ...]) -> None:
        """Running downloads, their `repo` label under the same cap as models."""
        metric = "opta_lmx_download_progress_ratio"
        listed = {download.repo for download in downloads}
        for old in self.downloads_running:
            if old.repo not in listed:
                self.cap.release(metric, old.repo)
        self.downloads_running = tuple(d for d in downloads if self.cap.admit(metric, d.repo))

    def apply_formats(self, formats: Mapping[str, str]) -> None:
        """LMX's load format (diagnostics) for each model it describes: never `unknown`."""
        self.formats = _bounded(formats, self.loaded, self._keep())
        for model, fmt in formats.items():
            if model in self.loaded:
                self.loaded[model] = fmt

    def disagrees(self, snap: Snapshot, since_seq: int) -> bool:
        """Would `reconcile` change the model set? Read-only, for a second look first."""
        if not self.synced:
            return False
        settled = self.model_seq.get
        return any(
            m not in snap.models and settled(m, -1) <= since_seq for m in self.loaded
        ) or any(m not in self.loaded and settled(m, -1) <= since_seq for m in snap.models)

    def apply_snapshot_gauges(self, snap: Snapshot, now: float) -> None:
        if snap.version is not None:
            self.version = snap.version
        if snap.uptime_seconds is not None:
            self.start_time = now - snap.uptime_seconds
        for attr, value in (
            ("memory_total", snap.memory_total_gb),
            ("memory_used", snap.memory_used_gb),
            ("memory_available", snap.memory_available_gb),
        ):
            if value is not None:
                setattr(self, attr, value * GIB)
        if snap.threshold_percent is not None:
            self.memory_threshold = snap.threshold_percent / 100.0
        if snap.in_flight is not None:
            self.in_flight = snap.in_flight
        if snap.max_concurrent is not None:
            self.max_concurrent = snap.max_concurrent

    def count_tokens(self, count: TokenCount) -> float | None:
        return self.throughput.count(count)

    def series_dropped(self) -> dict[str, float]:
        return {metric: float(n) for metric, n in self.cap.dropped.items()}

    def copy(self) -> LmxState:
        """A consistent copy for one scrape: taken under the lock, read outside it."""
        twin = LmxState.__new__(LmxState)
        for name, value in vars(self).items():
            if isinstance(value, dict):
                setattr(twin, name, dict(value))
            elif isinstance(value, HistogramFamily):
                setattr(twin, name, value.copy())
            else:
                setattr(twin, name, value)
        twin.throughput = self.throughput.clone()
        twin.cap = self.cap.clone()
        return twin
