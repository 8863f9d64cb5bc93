"""The host's condition as LMX reports it: memory pressure and load shedding, Metal,
quarantined models and crash loops, agent runs; and the admin reads built from them.

Kept apart from simulator.py (sockets, lifecycle) and models.py (what loads and requests
do) so the states a test puts LMX in, and the bodies they show in, read together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from lmx_simulator import admin_docs, docs
from lmx_simulator.metrics import RequestCounters
from lmx_simulator.routes import Route

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})  # how LMX's framework reads a bool query


class HostConditions:
    """Mixed into LmxSimulator, which owns this state and sets it up; writes hold `_cond`."""

    _cond: threading.Condition
    _models: dict[str, docs.Model]
    _requests: RequestCounters
    _tracker: dict[str, str]  # LMX's readiness tracker: outlives the model's unload
    _memory_percent: float | None
    _shed_percent: float
    _shed_forced: bool | None
    _metal: bool
    _metal_cache_gb: float
    _metal_peak_gb: float
    _crash_loop: bool
    _agents: dict[str, int]
    _state: Callable[[], docs.HostState]
    publish: Callable[[str, dict[str, object]], None]
    downloads_document: Callable[..., dict[str, object]]
    quantize_document: Callable[[], dict[str, object]]
    status_document: Callable[[], dict[str, object]]
    memory_document: Callable[[], dict[str, object]]

    # -- memory and load shedding ------------------------------------------------------
    def set_memory_usage(self, percent: float | None) -> None:
        """Memory in use, 0-100, as LMX's monitor reads it: status, memory, health,
        diagnostics and /admin/metrics agree, and shedding follows. None: from the models."""
        with self._cond:
            self._memory_percent = percent

    def set_shedding(self, on: bool | None) -> None:
        """Force load shedding on or off; None (the default) sheds exactly when usage is
        at or above load_shedding_percent, as LMX does."""
        with self._cond:
            self._shed_forced = on

    def is_shedding(self) -> bool:
        with self._cond:
            if self._shed_forced is not None:
                return self._shed_forced
            return docs.usage_percent(self._state()) >= self._shed_percent

    def set_metal(self, available: bool, *, cache_gb: float | None = None) -> None:
        """Whether health reports Metal's figures (a Mac) or null (no MLX on the host)."""
        with self._cond:
            self._metal = available
            if cache_gb is not None:
                self._metal_cache_gb = cache_gb

    # -- readiness, crash loops, agents ------------------------------------------------
    def quarantine_model(
        self,
        model_id: str,
        *,
        crash_count: int = 3,
        reason: str = "crash_loop",
        last_failure_reason: str | None = None,
    ) -> None:
        """LMX's readiness tracker quarantines the model. This event is the one place the
        crash count is told; /admin/models goes on showing 0."""
        with self._cond:
            previous = self._tracker.get(model_id, "unknown")
            self._tracker[model_id] = "quarantined"
            if (model := self._models.get(model_id)) is not None:
                model.readiness, model.reason = "quarantined", reason
        data: dict[str, object] = {
            "model_id": model_id,
            "previous_state": previous,
            "state": "quarantined",
            "reason": reason,
            "crash_count": crash_count,
            "updated_at": time.time(),
        }
        if last_failure_reason is not None:
            data["last_failure_reason"] = last_failure_reason
        self.publish("model_readiness_changed", data)

    def set_crash_loop(self, detected: bool) -> None:
        """LMX's own restart loop (diagnostics `crash_loop_detected`, verdict critical)."""
        with self._cond:
            self._crash_loop = detected

    def crash_loop_model(self, model_id: str, *, crash_count: int = 3) -> None:
        """A model that keeps crashing LMX: quarantined, and the crash loop detected."""
        self.set_crash_loop(True)
        self.quarantine_model(model_id, crash_count=crash_count, reason="crash_loop")

    def set_agent_runs(self, *, active: int = 0, completed: int = 0, failed: int = 0) -> None:
        with self._cond:
            self._agents = {"active": active, "completed": completed, "failed": failed}

    # -- the reads (httpserver.Backend) ------------------------------------------------
    def read(self, route: Route, query: str) -> tuple[int, object]:
        """(status, body) of a JSON read; /admin/events and /admin/metrics are the server's."""
        if route.name == "downloads":
            words = parse_qs(query).get("include_inactive", [""])
            inactive = words[-1].lower() in TRUE_WORDS
            return 200, self.downloads_document(include_inactive=inactive)
        if route.name == "performance":
            assert route.model_id is not None
            with self._cond:
                return admin_docs.performance_document(self._state(), route.model_id)
        if route.name == "readyz":
            with self._cond:
                return admin_docs.readyz_document(self._state())
        reads: dict[str, Callable[[], dict[str, object]]] = {
            "status": self.status_document,
            "memory": self.memory_document,
            "health": self.health_document,
            "models": self.models_document,
            "diagnostics": self.diagnostics_document,
            "quantize": self.quantize_document,
            "metrics_json": self.metrics_json_document,
            "healthz": self.healthz_document,
        }
        return 200, reads[route.name]()

    def health_document(self) -> dict[str, object]:
        with self._cond:
            return admin_docs.health_document(self._state(), self._metal_figures())

    def models_document(self) -> dict[str, object]:
        with self._cond:
            return admin_docs.models_document(self._state())

    def diagnostics_document(self) -> dict[str, object]:
        with self._cond:
            return admin_docs.diagnostics_document(
                self._state(), self._requests, self._tracker, self._crash_loop, self._agents
            )

    def metrics_json_document(self) -> dict[str, object]:
        with self._cond:
            return self._requests.summary(self._state().uptime_sec)

    def healthz_document(self) -> dict[str, object]:
        with self._cond:
            return admin_docs.healthz_document(self._state())

    def _metal_figures(self) -> admin_docs.Metal | None:
        """MLX's allocator holds the MLX-format models; call with `_cond` held."""
        active = docs.metal_active_gb(self._models)
        self._metal_peak_gb = max(self._metal_peak_gb, active)
        if not self._metal:
            return None
        return admin_docs.Metal(active, self._metal_peak_gb, self._metal_cache_gb)
