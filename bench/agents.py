"""One object per child process, driven by calls sent over a pipe.

Why processes and not threads: the exporter shares its host with inference, so what
matters is the CPU *its* process burns; a load generator in the same process would share
the GIL and the CPU clock. A child is started with `spawn` (no inherited threads or
locks), builds its object with a module-level factory and runs module-level functions on
it: `agent.call(fn, *args)` runs `fn(obj, *args)` in the child and returns the result.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

CALL_TIMEOUT = 300.0
START_TIMEOUT = 60.0


class AgentError(RuntimeError):
    """A call failed in the child; the message carries the child's traceback."""


def _serve(
    conn: Connection,
    factory: Callable[..., Any],
    teardown: Callable[[Any], None],
    kwargs: dict[str, Any],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        obj = factory(**kwargs)
    except Exception:
        conn.send(("err", traceback.format_exc()))
        return
    conn.send(("ok", None))
    try:
        while True:
            message = conn.recv()
            if message is None:
                return
            fn, args, kw = message
            try:
                conn.send(("ok", fn(obj, *args, **kw)))
            except Exception:
                conn.send(("err", traceback.format_exc()))
    except (EOFError, OSError):
        return  # the parent went away
    finally:
        teardown(obj)


class Pending(Generic[R]):
    """A call sent and not yet answered: `result()` waits for it."""

    def __init__(self, agent: Agent[Any]) -> None:
        self._agent = agent

    def result(self, timeout: float = CALL_TIMEOUT) -> R:
        return cast("R", self._agent.receive(timeout))


class Agent(Generic[T]):
    def __init__(
        self,
        name: str,
        factory: Callable[..., T],
        teardown: Callable[[T], None],
        **kwargs: Any,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(child, factory, teardown, kwargs), name=name, daemon=True
        )
        self._proc.start()
        child.close()
        self.name = name
        try:
            self.receive(START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def receive(self, timeout: float) -> object:
        if not self._conn.poll(timeout):
            raise TimeoutError(f"{self.name}: no answer within {timeout:.0f}s")
        status, value = self._conn.recv()
        if status == "err":
            raise AgentError(f"{self.name}:\n{value}")
        return value

    def send(
        self, fn: Callable[Concatenate[T, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> Pending[R]:
        self._conn.send((fn, args, kwargs))
        return Pending(self)

    def call(self, fn: Callable[Concatenate[T, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        return self.send(fn, *args, **kwargs).result()

    def close(self, timeout: float = 10.0) -> None:
        """Ask the child to tear down; terminate it if it does not finish in time."""
        if self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()

    def __enter__(self) -> Agent[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
