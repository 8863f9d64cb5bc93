"""LMX's request counters as its /admin/metrics shows them: the only place a running LMX
reports requests, written with LMX's defect (label values pasted in unescaped)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
COUNTERS = (
    "requests",
    "errors",
    "stream_requests",
    "prompt_tokens",
    "completion_tokens",
    "speculative_accepted_tokens",
    "speculative_rejected_tokens",
    "speculative_ignored_tokens",
)  # lmx_<name>_total, no labels
MODEL_COUNTERS = ("requests", "errors", "tokens")  # lmx_model_<name>_total{model=...}


@dataclass
class _ModelStats:
    counts: Counter[str] = field(default_factory=Counter)
    duration_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))


class RequestCounters:
    """Not thread-safe on its own: the simulator calls it under its Condition."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.per_model: dict[str, _ModelStats] = {}

    def record(
        self,
        model_id: str,
        *,
        latency_sec: float,
        prompt_tokens: int,
        completion_tokens: int,
        error: bool,
        stream: bool,
    ) -> None:
        self.totals.update(
            requests=1,
            errors=int(error),
            stream_requests=int(stream),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        stats = self.per_model.setdefault(model_id, _ModelStats())
        stats.counts.update(requests=1, errors=int(error), tokens=completion_tokens)
        stats.duration_sum += latency_sec
        stats.buckets = [
            n + int(latency_sec <= b) for n, b in zip(stats.buckets, BUCKETS, strict=True)
        ]

    def exposition(self, gauges: dict[str, float]) -> str:
        """LMX's own text, defect included: `model="{id}"` by plain string formatting."""
        lines = [f"# TYPE lmx_{c}_total counter\nlmx_{c}_total {self.totals[c]}" for c in COUNTERS]
        ratio = "lmx_speculative_acceptance_ratio"
        lines.append(f"# TYPE {ratio} gauge\n{ratio} NaN")  # no speculative decoding yet
        per_model = self.per_model.items()
        for c in MODEL_COUNTERS if per_model else ():
            lines.append(f"# TYPE lmx_model_{c}_total counter")
            lines += [f'lmx_model_{c}_total{{model="{m}"}} {s.counts[c]}' for m, s in per_model]
        h = "lmx_request_duration_seconds"
        lines += [f"# TYPE {h} histogram"] if per_model else []
        for m, s in per_model:
            les = [f"{b:g}" for b in BUCKETS] + ["+Inf"]
            counts = [*s.buckets, s.counts["requests"]]
            lines += [
                f'{h}_bucket{{model="{m}",le="{le}"}} {n}'
                for le, n in zip(les, counts, strict=True)
            ]
            lines += [
                f'{h}_sum{{model="{m}"}} {s.duration_sum}',
                f'{h}_count{{model="{m}"}} {counts[-1]}',
            ]
        lines += [f"# TYPE lmx_{g} gauge\nlmx_{g} {v}" for g, v in gauges.items()]
        return "\n".join(lines) + "\n"
