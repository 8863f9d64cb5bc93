"""Wiring: one store, the consumer and snapshot threads, the HTTP server.

Kept out of cli.py so tests run the whole exporter in-process with an injected clock,
registry and sessions, and stop it deterministically.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable
from typing import Any

import requests
from prometheus_client import CollectorRegistry
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from opta_exporter.config import Config
from opta_exporter.core.clock import Clock
from opta_exporter.core.health import ExporterHealth, SourceStatus
from opta_exporter.core.state import LmxState
from opta_exporter.lmx.client import LmxClient
from opta_exporter.lmx.shedding import SheddingWatch
from opta_exporter.metrics.collector import LmxCollector
from opta_exporter.readers.poll import poll
from opta_exporter.readers.snapshots import Snapshotter, snapshot_loop
from opta_exporter.readers.source import PolledSource, admin_sources
from opta_exporter.relay.families import RelayCollector
from opta_exporter.relay.reader import RelayReader
from opta_exporter.relay.text import RelayText
from opta_exporter.store import Store, ThreadReport
from opta_exporter.stream.consumer import StreamConsumer
from opta_exporter.web.app import make_app
from opta_exporter.web.events import LiveFeed
from opta_exporter.web.httpd import MetricsServer, systemd_sockets
from opta_exporter.web.webconfig import WebConfig

RESTART_AFTER = 1.0  # seconds before a loop that an exception escaped runs again


class ListenError(OSError):
    """One of the listen addresses cannot be served; `address` names it."""

    def __init__(self, address: str, exc: OSError) -> None:
        super().__init__(exc.errno, exc.strerror)
        self.address = address


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _snapshot_session() -> requests.Session:
    """Snapshots are idempotent GETs: one retry hides a keep-alive connection that LMX
    closed between two reads, instead of counting a failed resync. A status is never
    retried, Retry-After included: LMX's load-shedding 503 carries `retry-after: 30`, and
    urllib3 would turn it into a RetryError that hides the `overloaded` body."""
    session = requests.Session()
    retry = Retry(
        total=1,
        connect=1,
        read=1,
        status=0,
        redirect=0,
        other=0,
        respect_retry_after_header=False,
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _poll_source(source: PolledSource[Any], stop: threading.Event, report: ThreadReport) -> None:
    poll(source.read_once, source.wait, stop, report)


class Exporter:
    def __init__(
        self,
        config: Config,
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
        session_factory: Callable[[], requests.Session] | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] = random.random,
        web: WebConfig | None = None,
    ) -> None:
        self.config = config
        self.stop_event = threading.Event()
        intervals = {
            "status": config.snapshot_interval,
            "memory": config.snapshot_interval,
            "health": config.health_interval,
            "models": config.models_interval,
            "diagnostics": config.diagnostics_interval,
            "downloads": config.jobs_interval,
            "quantize": config.jobs_interval,
            "relay": config.relay_interval,
        }
        self.store = Store(
            LmxState(max_models=config.max_models, window_duration=config.window_duration),
            ExporterHealth(
                stale_timeout=config.stale_timeout,
                sources={name: SourceStatus(every) for name, every in intervals.items() if every},
            ),
            clock,
        )
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(LmxCollector(self.store))
        # every reader tells it what LMX answered: a 503 `overloaded` is load shedding
        shedding = SheddingWatch(self.store.set_shedding)
        self.snapshotter = Snapshotter(
            config, self.store, (session_factory or _snapshot_session)(), shedding
        )
        self.consumer = StreamConsumer(
            config,
            self.store,
            self.snapshotter.resync,
            (session_factory or requests.Session)(),
            self.stop_event,
            sleep=sleep,
            rng=rng,
            answers=shedding,
        )
        store = self.store
        polled = LmxClient.from_config(config, (session_factory or _snapshot_session)(), shedding)
        self.sources = admin_sources(config, polled, store)
        self.store.sync = self.consumer.flush
        # /metrics writes the exporter's families itself and appends the relay's text;
        # the registry holds both for library users and tests.
        self.relay: RelayReader | None = None
        relay_text = None
        if config.relay_interval > 0:
            self.relay = RelayReader(
                config,
                _snapshot_session(),
                clock,
                shedding,
                self.store.source_read,
                on_tokens=self.store.count_tokens,
            )
            self.registry.register(RelayCollector(self.relay))
            relay_text = RelayText(self.relay)
        # one server per --web.listen-address, all serving the one app
        # the live view's feed: its viewers set the relay's cadence
        self.live = LiveFeed(self.store, self.relay)
        app = make_app(self.store, relay_text, config, self.live)
        self.servers: list[MetricsServer] = []
        if config.systemd_socket:
            passed = systemd_sockets()
            if not passed:
                raise ListenError(
                    "systemd's sockets",
                    OSError(0, "--web.systemd-socket is set, but systemd passed no socket"),
                )
            for sock in passed:
                self.servers.append(
                    MetricsServer(
                        "", 0, app, web, max_connections=config.max_requests, listening=sock
                    )
                )
        for host, port in [] if config.systemd_socket else config.listen_addresses:
            try:
                self.servers.append(
                    MetricsServer(host, port, app, web, max_connections=config.max_requests)
                )
            except OSError as exc:
                for server in self.servers:
                    server.stop()
                raise ListenError(_address(host, port), exc) from exc
        self.server = self.servers[0]

        def thread(name: str, body: Callable[[ThreadReport], object]) -> threading.Thread:
            report = self.store.thread(name)
            return threading.Thread(
                target=self._supervise, name=name, daemon=True, args=(report, body)
            )

        stop = self.stop_event
        self._threads = [
            thread("stream", lambda report: self.consumer.run()),
            thread(
                "snapshots",
                lambda report: snapshot_loop(
                    self.snapshotter, config.snapshot_interval, stop, self._on_drift, report
                ),
            ),
            *(
                thread(
                    source.name,
                    functools.partial(_poll_source, source, stop),
                )
                for source in self.sources
            ),
        ]
        relay = self.relay
        if relay is not None and relay_text is not None:
            refresh = relay_text.refresh
            self._threads.append(thread("relay", lambda report: relay.run(stop, refresh, report)))

    def _supervise(self, report: ThreadReport, body: Callable[[ThreadReport], object]) -> None:
        """Every long-lived thread's body: up while it runs, and an exception that gets
        out of its loop is counted, said once per spell, and the loop started again a
        moment later; the thread ends only when the daemon stops. Should it end anyway,
        opta_exporter_thread_up and /-/ready say so."""
        report.running(True)
        try:
            while not self.stop_event.is_set():
                try:
                    body(report)
                except Exception as exc:
                    report.failed(exc)
                if self.stop_event.wait(RESTART_AFTER):
                    return
        finally:
            report.running(False)

    def _on_drift(self, drift: int) -> None:
        """A snapshot corrected the model set while the stream looked healthy: LMX has
        dropped this subscriber (queue overflow), so subscribe again."""
        self.consumer.interrupt("dropped")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def start(self) -> None:
        for server in self.servers:
            server.start()
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.stop_event.set()
        self.consumer.interrupt()
        self.live.stop()  # open /api/live/events streams end now, not at their next write
        if self.relay is not None:
            self.relay.wake()
        for server in self.servers:
            server.stop()
        for thread in self._threads:
            thread.join(timeout)
