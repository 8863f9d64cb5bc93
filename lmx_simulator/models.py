"""The stand-in's model lifecycle and request accounting: what a test or the demo does to LMX.

Kept apart from simulator.py so the event sequences LMX emits on load and unload, and the
quiet state changes it makes without any event (a finished request is one: it only moves
the /admin/metrics counters), read in one place, away from the sockets.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from lmx_simulator import docs
from lmx_simulator.metrics import RequestCounters

READINESS_BEFORE_LOADED = ("unknown", "admitted", "loading", "canary_pending")


class ModelLifecycle:
    """Mixed into LmxSimulator, which owns this state and sets it up; writes hold `_cond`."""

    _cond: threading.Condition
    _models: dict[str, docs.Model]
    _requests: RequestCounters
    _in_flight: int
    _queued: int
    _max_concurrent: int
    _tracker: dict[str, str]
    _metal_peak_gb: float
    publish: Callable[[str, dict[str, object]], None]

    def load_model(
        self,
        model_id: str,
        *,
        fmt: str = "mlx",
        memory_gb: float = 4.0,
        duration_sec: float = 1.5,
        emit: bool = True,
    ) -> None:
        """Load as /admin/models/load does, streaming LMX's eight-event sequence in order."""
        backend = "llama-cpp" if fmt == "gguf" else "mlx-lm"
        if emit:
            for previous, state in itertools.pairwise(READINESS_BEFORE_LOADED):
                self._readiness(model_id, previous, state)
        with self._cond:
            self._models[model_id] = docs.Model(fmt, memory_gb, time.time())
            self._tracker[model_id] = "routable"
            self._metal_peak_gb = max(self._metal_peak_gb, docs.metal_active_gb(self._models))
        if not emit:
            return
        self._emit(
            "model_loaded",
            model_id=model_id,
            format=fmt,
            memory_gb=memory_gb,
            duration_sec=duration_sec,
        )
        self._emit("model_canary_started", model_id=model_id, backend=backend)
        self._readiness(model_id, "canary_pending", "routable")
        self._emit(
            "model_compatibility_recorded",
            model_id=model_id,
            backend=backend,
            backend_version="0.26.0",
            outcome="pass",
            reason=None,
            ts=time.time(),
            metadata={"source": "load"},
        )
        self._emit("model_canary_passed", model_id=model_id, backend=backend, duration_sec=0.4)

    def _readiness(self, model_id: str, previous: str, state: str) -> None:
        self._emit(
            "model_readiness_changed",
            model_id=model_id,
            previous_state=previous,
            state=state,
            reason=None,
            crash_count=0,
            updated_at=time.time(),
        )

    def _emit(self, event_type: str, **data: object) -> None:
        self.publish(event_type, data)

    def unload_model(self, model_id: str, *, reason: str = "manual", emit: bool = True) -> None:
        """LMX sends `model_unloaded` alone: no readiness event follows an unload."""
        with self._cond:
            model = self._models.pop(model_id, None)
        if emit:
            freed = model.memory_gb if model else 0.0
            self._emit("model_unloaded", model_id=model_id, memory_freed_gb=freed, reason=reason)

    def set_models(self, models: dict[str, float]) -> None:
        """Replace the model set without a single event, as after an unseen LMX restart."""
        now = time.time()
        with self._cond:
            self._models = {
                mid: docs.Model("gguf" if mid.endswith(".gguf") else "mlx", gb, now)
                for mid, gb in models.items()
            }
            self._tracker = dict.fromkeys(models, "routable")

    def record_request(
        self,
        model_id: str,
        *,
        latency_sec: float = 0.5,
        prompt_tokens: int = 10,
        completion_tokens: int = 20,
        error: bool = False,
        stream: bool = False,
        client_id: str | None = None,
    ) -> None:
        """Count a finished request (`client_id`: the caller's X-Client-Id header) where
        LMX counts it: /admin/metrics, /admin/metrics/json, /admin/diagnostics and the
        model's entry in /admin/models. Like LMX, it publishes no event."""
        with self._cond:
            self._requests.record(
                model_id,
                latency_sec=latency_sec,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                error=error,
                stream=stream,
                client=client_id,
            )
            if (model := self._models.get(model_id)) is not None:
                model.request_count += 1
                model.last_used_at = time.time()

    def set_in_flight(self, n: int, queued: int = 0) -> None:
        """`n` requests holding an inference slot, `queued` waiting for one. LMX counts
        a request in flight only once it holds a slot, so never more than its limit."""
        if not 0 <= n <= self._max_concurrent or queued < 0:
            raise ValueError(f"in flight {n} (limit {self._max_concurrent}), queued {queued}")
        with self._cond:
            self._in_flight, self._queued = n, queued
