"""Which admin path is which read, matched the way LMX's router sees the path: after
percent-decoding, so `%2F` in a model id is a `/` by the time the route is chosen."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# Paths LMX's load-shedding middleware lets through, compared exactly (no trailing slash).
SHEDDING_EXEMPT = frozenset({"/healthz", "/readyz", "/admin/health"})
ADMIN_READS = {
    "/admin/events": "events",
    "/admin/status": "status",
    "/admin/memory": "memory",
    "/admin/metrics": "metrics",
    "/admin/metrics/json": "metrics_json",
    "/admin/health": "health",
    "/admin/models": "models",
    "/admin/models/downloads": "downloads",
    "/admin/diagnostics": "diagnostics",
    "/admin/quantize": "quantize",
}
OPEN_READS = {"/healthz": "healthz", "/readyz": "readyz"}  # no admin key asked
_PERFORMANCE = re.compile(r"/admin/models/(.+)/performance", re.DOTALL)


@dataclass(frozen=True)
class Route:
    name: str
    admin: bool = True
    model_id: str | None = None  # the {model_id:path} of the performance read


def request_path(target: str) -> tuple[str, str]:
    """(decoded path, raw query) of a request target."""
    parts = urlsplit(target)
    return unquote(parts.path), parts.query


def route_for(path: str) -> Route | None:
    if path in ADMIN_READS:
        return Route(ADMIN_READS[path])
    if path in OPEN_READS:
        return Route(OPEN_READS[path], admin=False)
    if match := _PERFORMANCE.fullmatch(path):
        return Route("performance", model_id=match.group(1))
    return None
