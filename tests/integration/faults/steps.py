"""What the fault tests share: the MakeRig type, script steps (a model load, a heartbeat,
each whole or trickled) and a wait for reconnects."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.faults.faulty_rig import Rig
from tests.integration.faults.faulty_script import Effect, Send

MakeRig = Callable[..., Rig]
MB = 1 << 20


def load(model: str, *, gb: float = 1.0, trickle: bool = False, eol: bytes = b"\n") -> Send:
    data: dict[str, object] = {"model_id": model, "format": "mlx", "memory_gb": gb}
    return Send("model_loaded", data, Effect("load", model, gb), trickle=trickle, eol=eol)


def beat(*, trickle: bool = False, eol: bytes = b"\n") -> Send:
    return Send("heartbeat", {"timestamp": 1.0}, trickle=trickle, eol=eol)


def reconnected(reason: str, n: int = 1) -> Callable[..., bool]:
    return lambda s, h: h.reconnects[reason] >= n
