"""The LMX stand-in against real sockets: the event bus (lmx_simulator/hub.py) -- the zombie
rule, the unbounded-queue switch, the subscriber limit's 200 with an empty body."""

from __future__ import annotations

from tests.unit.lmx_simulator.harness import Harness, event


def test_slow_consumer_becomes_a_heartbeat_only_zombie(h: Harness) -> None:
    sim = h.sim(queue_size=5, heartbeat_interval=0.2)
    c = h.client(sim, rcvbuf=4096)
    assert sim.wait_for_subscribers(1)
    padding = "x" * 65536
    for i in range(2000):  # the socket buffers fill, then the queue, then LMX gives up
        sim.publish("flood", {"i": i, "padding": padding})
        if sim.zombie_count():
            break
    assert (sim.zombie_count(), sim.subscriber_count()) == (1, 0)
    sim.publish("after", {})
    seen_flood = False
    while True:  # the queued backlog drains, then heartbeats only
        name, _ = event(c.read_chunk())
        assert name != "after"
        seen_flood = seen_flood or name == "flood"
        if seen_flood and name == "heartbeat":
            break
    assert h.client(sim).status == 200  # a zombie holds no slot
    assert sim.wait_for_subscribers(1)


def test_unbounded_queue_switch_never_drops(h: Harness) -> None:
    sim = h.sim(queue_size=2, zombie_on_overflow=False)
    c = h.client(sim)
    assert sim.wait_for_subscribers(1)
    for i in range(50):
        sim.publish("e", {"i": i})
    assert [event(c.read_chunk())[1]["i"] for _ in range(50)] == list(range(50))
    assert (sim.zombie_count(), sim.subscriber_count()) == (0, 1)


def test_subscriber_past_the_limit_gets_200_and_an_empty_body(h: Harness) -> None:
    sim = h.sim(max_subscribers=3, reserved_subscribers=1)
    h.client(sim)
    h.client(sim)
    assert sim.wait_for_subscribers(2)
    refused = h.client(sim)
    assert refused.status == 200
    assert refused.headers["content-type"].startswith("text/event-stream")
    assert refused.read_chunk() == b""
    assert refused.read_to_eof() == b""
    assert (sim.subscriber_count(), sim.connections_total) == (2, 3)
