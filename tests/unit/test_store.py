"""Store (store.py): the one lock, what writers record and what readers copy."""

from __future__ import annotations

import threading
from collections.abc import Callable

from opta_exporter.core.events import SseEvent
from opta_exporter.core.health import ExporterHealth
from opta_exporter.core.state import LmxState
from opta_exporter.core.throughput import TokenCount
from opta_exporter.store import Store
from tests.fakes import FakeClock
from tests.helpers import example_snapshot

MODEL = "mlx-community/Qwen3-8B-4bit"


def make(clock: FakeClock | None = None) -> Store:
    return Store(LmxState(), ExporterHealth(stale_timeout=45.0), clock or FakeClock())


def loaded(name: str = MODEL) -> SseEvent:
    return SseEvent("model_loaded", f'{{"model_id": "{name}", "memory_gb": 4.0}}'.encode(), None)


def test_a_read_is_applied_under_one_lock_and_stamped_with_the_clock() -> None:
    clock = FakeClock()
    store = make(clock)
    errors = store.ingest_events([loaded(), SseEvent("model_loaded", b"{not json", None)])
    assert [error.reason for error in errors] == ["malformed_json"]
    view = store.view()
    assert MODEL in view.state.loaded
    assert view.state.event_errors["malformed_json"] == 1
    assert view.health.last_event_wall == clock.wall
    assert view.health.last_activity == clock.mono
    assert (view.now, view.wall) == (clock.mono, clock.wall)


def test_a_view_is_a_copy_later_writes_do_not_reach() -> None:
    store = make()
    store.ingest("model_loaded", f'{{"model_id": "{MODEL}"}}')
    view = store.view()
    store.ingest("model_unloaded", f'{{"model_id": "{MODEL}", "reason": "ttl"}}')
    store.set_connection("backoff", 2.0, "eof")
    assert MODEL in view.state.loaded
    assert view.health.connection_state == "connecting"
    assert view.health.reconnects["eof"] == 0
    assert MODEL not in store.view().state.loaded


def test_readers_sync_first_so_they_see_what_lmx_already_sent() -> None:
    """A batching stream thread is asked to apply what has arrived before any read."""
    store = make()
    arrived = [loaded("a"), loaded("b")]  # on the wire, not yet applied

    def sync() -> bool:
        if arrived:
            store.ingest_events([arrived.pop(0)])
        return True

    store.sync = sync
    assert set(store.view().state.loaded) == {"a"}
    before = store.state.seq
    assert store.seq() == before + 1  # "b" applied before the answer
    assert set(store.view().state.loaded) == {"a", "b"}


def test_connection_states_backoff_and_reasons() -> None:
    clock = FakeClock()
    store = make(clock)
    store.set_connection("backoff", 1.5, "connect_error")
    health = store.view().health
    assert (health.connection_state, health.backoff_seconds) == ("backoff", 1.5)
    assert health.reconnects["connect_error"] == 1
    clock.advance(10)
    store.set_connection("open")
    health = store.view().health
    assert health.backoff_seconds == 0.0
    assert health.last_activity == clock.mono  # the stale timer starts at the answer
    assert health.up(clock.mono)


def test_reconcile_counts_success_and_failure() -> None:
    store = make()
    since = store.seq()
    drift = store.reconcile(example_snapshot({MODEL: 4.0}), since)
    store.resync_failed()
    view = store.view()
    assert drift == 0  # the first snapshot fills an empty state
    assert MODEL in view.state.loaded
    assert view.health.resyncs == {"success": 1.0, "failure": 1.0}
    assert not store.disagrees(example_snapshot({MODEL: 4.0}), store.seq())
    assert store.disagrees(example_snapshot({}), store.seq())


def test_token_reads_feed_the_window_and_a_view_keeps_its_own_copy() -> None:
    clock = FakeClock()
    store = make(clock)
    store.count_tokens(TokenCount(clock.mono, clock.wall, 1000.0, 60.0))
    assert store.view().state.throughput.window.samples(clock.wall) == []  # one read: no rate yet
    clock.advance(15)
    store.count_tokens(TokenCount(clock.mono, clock.wall, 1300.0, 75.0))
    view = store.view()
    assert view.state.throughput.window.samples(view.wall) == [(clock.wall, 20.0)]
    assert view.state.throughput.last == TokenCount(clock.mono, clock.wall, 1300.0, 75.0)
    clock.advance(15)
    store.count_tokens(TokenCount(clock.mono, clock.wall, 1450.0, 90.0))
    window = view.state.throughput.window
    assert window.samples(clock.wall) == [(clock.wall - 15, 20.0)]  # unchanged
    now = store.view().state.throughput.window
    assert [rate for _, rate in now.samples(clock.wall)] == [20.0, 10.0]


def woken_by(
    store: Store, writer: threading.Thread, until: Callable[[LmxState], bool]
) -> list[bool]:
    """Start a waiter, then (once it is waiting) the writer; what the waiter returned."""
    waiting = threading.Event()

    def predicate(state: LmxState, health: ExporterHealth) -> bool:
        waiting.set()
        return until(state)

    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(store.wait_for(predicate, 10.0)))
    waiter.start()
    assert waiting.wait(10.0)
    writer.start()
    writer.join(10.0)
    waiter.join(10.0)
    return result


def test_wait_for_wakes_on_a_token_read_from_another_thread() -> None:
    clock = FakeClock()
    store = make(clock)
    store.count_tokens(TokenCount(clock.mono - 15, clock.wall - 15, 0.0))
    writer = threading.Thread(
        target=store.count_tokens, args=(TokenCount(clock.mono, clock.wall, 150.0),)
    )
    assert woken_by(store, writer, lambda state: len(state.throughput.window) == 1) == [True]


def test_wait_for_wakes_on_a_change_from_another_thread() -> None:
    store = make()
    writer = threading.Thread(target=store.count_error, args=("oversize", "too big"))
    assert woken_by(store, writer, lambda state: state.event_errors["oversize"] == 1) == [True]


def test_wait_for_gives_up_at_its_timeout() -> None:
    store = make()
    assert not store.wait_for(lambda state, health: False, 0.01)
