"""The simulator tests' harness, torn down after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.lmx_simulator.harness import Harness


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    for client in harness.clients:
        client.close()
    for sim in harness.sims:
        sim.stop()
