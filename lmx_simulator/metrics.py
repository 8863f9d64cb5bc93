"""LMX's request counters as its /admin/metrics shows them: the only place a running LMX
reports requests, written with LMX's defect (label values pasted in unescaped)."""

from __future__ import annotations

import time
from collections import Counter, deque
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
CLIENT_COUNTERS = ("requests", "tokens", "errors")  # lmx_client_<name>_total{client=...}
SCHEMA_VERSION = "2026-03-02"  # of /admin/metrics/json
THROUGHPUT_WINDOW_SEC = 60.0
JSON_COUNTS = {"requests": "requests", "errors": "errors", "completion_tokens": "tokens"}
TIMES_KEPT = 100_000


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
        self.per_client: dict[str, Counter[str]] = {}  # by the caller's X-Client-Id
        self.times: deque[float] = deque(maxlen=TIMES_KEPT)  # wall clock of each request

    def record(
        self,
        model_id: str,
        *,
        latency_sec: float,
        prompt_tokens: int,
        completion_tokens: int,
        error: bool,
        stream: bool,
        client: str | None = None,
    ) -> None:
        self.times.append(time.time())
        if client is not None:
            counts = self.per_client.setdefault(client, Counter())
            counts.update(requests=1, tokens=completion_tokens, errors=int(error))
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
        clients = self.per_client.items()
        for c in CLIENT_COUNTERS if clients else ():
            lines.append(f"# TYPE lmx_client_{c}_total counter")
            lines += [f'lmx_client_{c}_total{{client="{k}"}} {n[c]}' for k, n in clients if n[c]]
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

    def throughput(self, uptime_sec: float) -> float:
        """Requests per second over the last minute (or the uptime, if shorter), as LMX's
        `throughput_1m` reports it despite the name."""
        since = time.time() - THROUGHPUT_WINDOW_SEC
        recent = sum(1 for t in self.times if t >= since)
        window = min(THROUGHPUT_WINDOW_SEC, uptime_sec)
        return round(recent / window, 6) if window > 0 else 0.0

    def latency_sum(self) -> float:
        return sum(s.duration_sum for s in self.per_model.values())

    def summary(self, uptime_sec: float) -> dict[str, object]:
        """/admin/metrics/json: per_model lists only models that served a request,
        per_client only callers that sent an X-Client-Id."""
        t = self.totals

        def triple(counts: Counter[str]) -> dict[str, int]:
            return {key: counts[c] for key, c in JSON_COUNTS.items()}

        return {
            "total_requests": t["requests"],
            "total_errors": t["errors"],
            "total_stream_requests": t["stream_requests"],
            "total_prompt_tokens": t["prompt_tokens"],
            "total_completion_tokens": t["completion_tokens"],
            "requests": {
                "total": t["requests"],
                "errors": t["errors"],
                "stream_total": t["stream_requests"],
                "throughput_1m": self.throughput(uptime_sec),
            },
            "tokens": {
                "prompt_total": t["prompt_tokens"],
                "completion_total": t["completion_tokens"],
            },
            "speculative": {
                "accepted_tokens": t["speculative_accepted_tokens"],
                "rejected_tokens": t["speculative_rejected_tokens"],
                "ignored_tokens": t["speculative_ignored_tokens"],
                "acceptance_ratio": None,
            },
            "per_model": {m: triple(s.counts) for m, s in self.per_model.items()},
            "uptime_seconds": round(uptime_sec, 1),
            "per_client": {c: triple(counts) for c, counts in self.per_client.items()},
            "schema_version": SCHEMA_VERSION,
        }
