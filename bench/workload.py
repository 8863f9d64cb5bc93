"""Realistic LMX event frames: the mix, the models and the size LMX's stream carries.

Only event types a running LMX sends (it sends none per request): 50 %
`model_compatibility_recorded`, 40 % `model_readiness_changed`, 10 % `model_canary_passed`,
over 100 models, framed as LMX frames them (`json.dumps` on one line); ~197 bytes an
event. Deterministic for a seed, so every consumer reads the same bytes.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence

MODELS = tuple(f"mlx-community/Qwen3-{i:02d}-4bit" for i in range(100))
READINESS = ("admitted", "loading", "canary_pending", "routable", "quarantined")
SEED = 9
T0 = 1_760_000_000.0


def _compatibility(rng: random.Random, i: int) -> bytes:
    data = {
        "model_id": rng.choice(MODELS),
        "backend": rng.choice(("mlx", "gguf")),
        "outcome": "fail" if rng.random() < 0.03 else "pass",
        "reason": "",
        "ts": round(T0 + i / 1000, 3),
        "metadata": {"source": "canary", "attempt": rng.randint(1, 3)},
    }
    return f"event: model_compatibility_recorded\ndata: {json.dumps(data)}\n\n".encode()


def _canary(rng: random.Random, i: int) -> bytes:
    data = {
        "model_id": rng.choice(MODELS),
        "backend": "mlx-lm",
        "duration_sec": round(rng.lognormvariate(0.0, 1.0), 3),
    }
    return f"event: model_canary_passed\ndata: {json.dumps(data)}\n\n".encode()


def _readiness(rng: random.Random, i: int) -> bytes:
    previous, state = rng.sample(READINESS, 2)
    data = {
        "model_id": rng.choice(MODELS),
        "previous_state": previous,
        "state": state,
        "reason": None,
        "crash_count": rng.randint(0, 3),
        "updated_at": round(T0 + i / 1000, 3),
    }
    return f"event: model_readiness_changed\ndata: {json.dumps(data)}\n\n".encode()


def frames(count: int, seed: int = SEED) -> list[bytes]:
    """`count` SSE frames of the realistic mix."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        roll = rng.random()
        make = _compatibility if roll < 0.5 else _readiness if roll < 0.9 else _canary
        out.append(make(rng, i))
    return out


def chunked(frames: Sequence[bytes]) -> bytes:
    """One HTTP chunk per event, as uvicorn sends LMX's stream."""
    return b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames)


def paced(
    publish: Callable[[bytes], None], frames: Sequence[bytes], rate: float
) -> tuple[float, float]:
    """Publish at `rate` events/s on a fixed schedule (late events go at once, so a slow
    moment is caught up, as a real burst would); returns (start, seconds) on the monotonic
    clock."""
    start = time.monotonic()
    for i, frame in enumerate(frames):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publish(frame)
    return start, time.monotonic() - start
