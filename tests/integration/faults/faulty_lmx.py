"""A fault-injecting Opta LMX on loopback, on raw sockets so every byte is the test's.

It speaks LMX's wire format (lmx-protocol.md): `/admin/events` answers 200
`text/event-stream; charset=utf-8`, chunked, one chunk per event, silent until the first
event; `/admin/status` and `/admin/memory` answer JSON for a model set the test controls.
Each event-stream connection plays the next queued `Script` (faulty_script.py) and
leaves a `ConnRecord` of what it really sent. The listener can go down and come back on
the same port. Everything is bounded: socket timeouts, held streams time out, and
`stop()` cuts every connection and joins every thread.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from tests.integration.faults.faulty_script import (
    AwaitSnapshot,
    ConnRecord,
    Effect,
    End,
    Hold,
    Reply,
    Script,
)
from tests.integration.faults.faulty_wire import Connection, Ended, read_head, response

IO_TIMEOUT = 5.0  # no single socket operation of a test may hang longer
JOIN_TIMEOUT = 2.0


class FaultyLmx:
    def __init__(
        self, *, admin_key: str | None = None, models: dict[str, float] | None = None
    ) -> None:
        self.admin_key = admin_key
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.models: dict[str, float] = dict(models or {})
        self.scripts: deque[Script] = deque()
        self.records: list[ConnRecord] = []
        self.requests: deque[tuple[str, str, dict[str, str]]] = deque(maxlen=10_000)
        self.snapshot_status = 200
        self.snapshot_headers: tuple[tuple[str, str], ...] = ()  # e.g. a Location
        self.snapshots = 0  # snapshot reads served (memory answered, or a refused read)
        self.releases = 0
        self.port = 0
        self._listener: socket.socket | None = None
        self._threads: set[threading.Thread] = set()
        self._live: dict[socket.socket, Connection | None] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------
    def up(self) -> None:
        """Listen (again, on the same port once it has one)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)  # accept() wakes to notice down()
        self.port = listener.getsockname()[1]
        with self.cond:
            if self.stopping.is_set():  # an outage ending while the test stops the server
                listener.close()
                return
            self._listener = listener
        self._spawn(self._accept, listener)

    start = up

    def down(self) -> None:
        """The server is gone: connections are refused and open ones are cut."""
        with self.cond:
            listener, self._listener = self._listener, None
            live = dict(self._live)
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock, conn in live.items():
            if conn is not None:
                conn.killed = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restart(self, models: dict[str, float] | None = None) -> None:
        self.down()
        if models is not None:
            self.set_models(models)
        self.up()

    def stop(self) -> None:
        self.stopping.set()
        self.down()
        deadline = time.monotonic() + JOIN_TIMEOUT
        with self.cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def __enter__(self) -> FaultyLmx:
        self.up()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what tests drive -----------------------------------------------------------------
    def push(self, *scripts: Script) -> None:
        with self.cond:
            self.scripts.extend(scripts)

    def release(self) -> None:
        """End the current (or next) `Hold` of every open stream; each goes on with its
        next step. A release before a stream reached its Hold is not lost."""
        with self.cond:
            self.releases += 1
            self.cond.notify_all()

    def set_models(self, models: dict[str, float]) -> None:
        with self.cond:
            self.models = dict(models)
            self.cond.notify_all()

    def apply(self, effect: Effect) -> bool:
        """Change the model set; True when it really changed."""
        with self.cond:
            before = effect.model in self.models
            if effect.kind == "load":
                self.models[effect.model] = effect.memory_gb
            else:
                self.models.pop(effect.model, None)
            self.cond.notify_all()
            return before != (effect.kind == "load")

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate() or self.stopping.is_set(), timeout)

    def connections(self) -> int:
        with self.cond:
            return len(self.records)

    # -- serving --------------------------------------------------------------------------
    def _spawn(self, target: Callable[[socket.socket], None], sock: socket.socket) -> None:
        thread = threading.Thread(target=self._run, args=(target, sock), daemon=True)
        with self.cond:
            self._threads.add(thread)
        thread.start()

    def _run(self, target: Callable[[socket.socket], None], sock: socket.socket) -> None:
        try:
            target(sock)
        finally:
            with self.cond:
                self._threads.discard(threading.current_thread())

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self.cond:
                if self._listener is not listener:
                    return
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.cond:
                self._live[sock] = None
            self._spawn(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(IO_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            head = read_head(sock)
            if head is None:
                return
            method, target, headers = head
            with self.cond:
                self.requests.append((method, target, headers))
            path = target.split("?", 1)[0]
            if self.admin_key is not None and headers.get("x-admin-key") != self.admin_key:
                body = b'{"detail": "Invalid or missing admin key"}'
                sock.sendall(response(403, body, "application/json", ()))
            elif path == "/admin/events":
                self._events(sock, target, headers)
            elif path in ("/admin/status", "/admin/memory"):
                self._snapshot(sock, path)
            else:
                sock.sendall(response(404, b'{"detail": "Not Found"}', "application/json", ()))
        except OSError:
            pass
        finally:
            with self.cond:
                self._live.pop(sock, None)
            sock.close()

    def _snapshot(self, sock: socket.socket, path: str) -> None:
        with self.cond:
            status, models = self.snapshot_status, dict(self.models)
            extra = self.snapshot_headers
        used = 2.0 + sum(models.values())
        doc: dict[str, object]
        if status != 200:
            doc = {"detail": "scripted failure"}
        elif path == "/admin/status":
            memory = {"total_gb": 512.0, "used_gb": used, "available_gb": 512.0 - used}
            doc = {"version": "0.1.0", "uptime_seconds": 12.5, "loaded_models": len(models)}
            doc |= {"models": list(models), "memory": memory | {"threshold_percent": 90}}
            doc |= {"in_flight_requests": 0, "max_concurrent_requests": 4}
        else:
            per_model = {m: {"memory_gb": gb, "loaded": True} for m, gb in models.items()}
            doc = {"total_unified_memory_gb": 512.0, "used_gb": used}
            doc |= {"available_gb": 512.0 - used, "threshold_percent": 90, "models": per_model}
        sock.sendall(response(status, json.dumps(doc).encode(), "application/json", extra))
        if path == "/admin/memory" or status != 200:
            with self.cond:
                self.snapshots += 1
                self.cond.notify_all()

    def _events(self, sock: socket.socket, target: str, headers: dict[str, str]) -> None:
        with self.cond:
            script = self.scripts.popleft() if self.scripts else Script([AwaitSnapshot(), Hold()])
            record = ConnRecord(len(self.records), headers, target)
            self.records.append(record)
            self.cond.notify_all()
        ending = "reply"
        try:
            if script.reply is not None:
                self._reply(sock, script.reply)
                return
            conn = Connection(self, sock, record, script.chunked)
            with self.cond:
                self._live[sock] = conn
            head = ["HTTP/1.1 200 OK", "Cache-Control: no-cache", "x-request-id: faulty"]
            if script.content_type is not None:
                head.append(f"Content-Type: {script.content_type}")
            head.append("Transfer-Encoding: chunked" if script.chunked else "Connection: close")
            head += [f"{name}: {value}" for name, value in script.headers]
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            try:
                for step in [*script.steps, End()]:
                    step.run(conn)
            except Ended as ended:
                ending = ended.ending
        except OSError:
            ending = "client_closed"
        finally:
            with self.cond:
                record.ending = ending
                record.done.set()
                self.cond.notify_all()

    def _reply(self, sock: socket.socket, reply: Reply) -> None:
        sock.sendall(response(reply.status, reply.body, reply.content_type, reply.headers))
