"""The fault matrix' fixtures: a fault-injecting LMX with the admin key and one model, and
rigs (an exporter against it, with the invariants of `Rig.check()`) stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Gate
from tests.integration.faults.faulty_lmx import FaultyLmx
from tests.integration.faults.faulty_rig import KEY, Rig, start_rig
from tests.integration.faults.steps import MakeRig


@pytest.fixture
def lmx() -> Iterator[FaultyLmx]:
    with FaultyLmx(admin_key=KEY, models={"keep": 1.0}) as server:
        yield server


@pytest.fixture
def make_rig(lmx: FaultyLmx, caplog: pytest.LogCaptureFixture) -> Iterator[MakeRig]:
    rigs: list[Rig] = []

    def make(*, hold: bool = False, **overrides: object) -> Rig:
        """`hold=True` keeps the consumer in its first backoff until `rig.gate.release()`."""
        gate = Gate()
        if not hold:
            gate.release()
        rig = start_rig(lmx, caplog, gate, **overrides)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.gate.release()
        rig.exporter.stop()
