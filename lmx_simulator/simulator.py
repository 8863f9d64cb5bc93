"""A bundled Opta LMX stand-in: a real loopback HTTP server speaking LMX's admin wire format.

The defaults reproduce a running LMX, quirks included (silent connect, zombie subscribers,
a 200-with-no-body past the subscriber limit, unescaped label values on /admin/metrics);
each quirk has a switch. It streams only the events LMX's code sends: a request is counted
on /admin/metrics and sends nothing, and there is no live tokens/s figure anywhere. Tests
drive it through methods; `python -m lmx_simulator` runs the live demo scenario (demo.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from lmx_simulator import docs
from lmx_simulator.conditions import HostConditions
from lmx_simulator.httpserver import LmxHttpServer, WireOptions
from lmx_simulator.hub import EventHub
from lmx_simulator.jobs import Download, JobTracker, QuantizeJob
from lmx_simulator.metrics import RequestCounters
from lmx_simulator.models import ModelLifecycle

STOP_JOIN_SEC = 0.4
REQUESTS_KEPT = 10_000  # requests_seen is bounded so a long demo run does not grow forever


class LmxSimulator(ModelLifecycle, HostConditions, JobTracker):
    """LMX on loopback. One Condition guards all state, the subscribers and the counters;
    what tests do to LMX is in the mixins: ModelLifecycle (models.py: models, requests),
    HostConditions (conditions.py: memory, shedding, readiness, the other admin reads),
    JobTracker (jobs.py: downloads, quantize jobs)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        admin_key: str | None = None,
        heartbeat_interval: float = 30.0,
        queue_size: int = 100,
        max_subscribers: int = 50,
        reserved_subscribers: int = 1,
        silent_connect: bool = True,
        zombie_on_overflow: bool = True,
        chunked: bool = True,
        version: str = "0.1.0",
        memory_total_gb: float = 512.0,
        max_concurrent_requests: int = 4,
        metal: bool = True,
        load_shedding_percent: float = 95.0,
    ) -> None:
        self._host, self._port = host, port
        self._options = WireOptions(admin_key, heartbeat_interval, silent_connect, chunked)
        self._cond = threading.Condition(threading.RLock())
        self._hub = EventHub(
            self._cond,
            queue_size=queue_size,
            capacity=max_subscribers - reserved_subscribers,
            zombie_on_overflow=zombie_on_overflow,
        )
        self._version, self._total_gb = version, memory_total_gb
        self._max_concurrent = max_concurrent_requests
        self._models: dict[str, docs.Model] = {}
        self._requests = RequestCounters()
        self._in_flight = self._queued = 0
        self._started_at = time.time()
        self._requests_seen: deque[tuple[str, str, dict[str, str]]] = deque(maxlen=REQUESTS_KEPT)
        self._tracker: dict[str, str] = {}
        self._memory_percent: float | None = None
        self._shed_percent, self._shed_forced = load_shedding_percent, None
        self._metal, self._metal_cache_gb, self._metal_peak_gb = metal, 0.0, 0.0
        self._crash_loop, self._agents = False, {"active": 0, "completed": 0, "failed": 0}
        self._downloads: dict[str, Download] = {}
        self._jobs: dict[str, QuantizeJob] = {}
        self._server: LmxHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._ever_started = False

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def max_concurrent(self) -> int:
        return self._max_concurrent

    def start(self) -> None:
        """Bind and serve. A second start() reuses the port and, like a restarted LMX,
        begins again with zeroed counters and a fresh uptime (models stay: see set_models)."""
        with self._cond:
            if self._server is not None:
                return
            server = LmxHttpServer((self._host, self._port), self, self._hub, self._options)
            self._server, self._port = server, int(server.server_address[1])
            if self._ever_started:
                self._requests, self._in_flight, self._queued = RequestCounters(), 0, 0
            self._ever_started, self._started_at = True, time.time()
            self._hub.shut = False  # a stop() refused late subscribers; this run takes them
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"lmx-sim-{self._port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the listener and cut every connection at once, as a killed LMX would."""
        with self._cond:
            server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        self._hub.close_all(shut=True)
        handlers = server.abort_connections()
        server.server_close()
        deadline = time.monotonic() + STOP_JOIN_SEC
        for thread in [*handlers, *([self._thread] if self._thread else [])]:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def __enter__(self) -> LmxSimulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def close_streams(self) -> None:
        """End every open event stream with its terminating chunk; the listener stays up."""
        self._hub.close_all()

    # -- events ------------------------------------------------------------------------
    def publish(self, event_type: str, data: dict[str, object]) -> None:
        """A named event as LMX frames it: `json.dumps` on one line, non-ASCII escaped."""
        self._hub.publish(f"event: {event_type}\ndata: {json.dumps(data)}\n\n".encode())

    def publish_raw(self, frame: bytes) -> None:
        """Any bytes as one frame: for tests that make the stream misbehave on purpose."""
        self._hub.publish(frame)

    # -- observation -------------------------------------------------------------------
    def subscriber_count(self) -> int:
        with self._cond:
            return len(self._hub.live)

    def zombie_count(self) -> int:
        with self._cond:
            return len(self._hub.zombies)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until predicate() holds; re-checked on every subscriber or publish change."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def wait_for_subscribers(self, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda: len(self._hub.live) >= n, timeout)

    @property
    def connections_total(self) -> int:
        with self._cond:
            return self._hub.connections_total

    @property
    def events_published(self) -> int:
        with self._cond:
            return self._hub.events_published

    @property
    def requests_seen(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path with query, headers) of the last REQUESTS_KEPT requests, oldest
        first; header lookup ignores case."""
        with self._cond:
            return list(self._requests_seen)

    # -- documents served (httpserver.Backend) -------------------------------------
    def note_request(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._cond:
            self._requests_seen.append((method, path, headers))

    def _state(self) -> docs.HostState:
        """The model state the documents are built from; call with the Condition held."""
        return docs.HostState(
            version=self._version,
            total_gb=self._total_gb,
            max_concurrent=self._max_concurrent,
            models=self._models,
            in_flight=self._in_flight,
            queued=self._queued,
            uptime_sec=time.time() - self._started_at,
            memory_percent=self._memory_percent,
        )

    def status_document(self) -> dict[str, object]:
        with self._cond:
            return docs.status_document(self._state())

    def memory_document(self) -> dict[str, object]:
        with self._cond:
            return docs.memory_document(self._state())

    def metrics_text(self) -> str:
        """LMX's own exposition, defect included (see metrics.py)."""
        with self._cond:
            return self._requests.exposition(docs.metrics_gauges(self._state()))
