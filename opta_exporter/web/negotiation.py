"""Which format and encoding a scrape gets, from its Accept and Accept-Encoding headers:
by q-value, as Prometheus and RFC 9110 expect. Pure: no I/O.
"""

from __future__ import annotations

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _ranked(header: str) -> list[tuple[str, dict[str, str], float]]:
    """An Accept or Accept-Encoding header's entries: (lower-cased name, parameters, q),
    in the order sent. An entry whose q is not a number from 0 to 1 is left out."""
    entries = []
    for entry in header.split(","):
        name, *params = entry.split(";")
        args = {}
        for param in params:
            key, _, value = param.partition("=")
            args[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(args.pop("q", "1"))
        except ValueError:
            continue
        if 0.0 <= q <= 1.0:  # NaN fails both
            entries.append((name.strip().lower(), args, q))
    return entries


def negotiate(accept: str) -> str:
    """The Content-Type to answer with. We write OpenMetrics 1.0.0 and text 0.0.4 only:
    an OpenMetrics range naming another version is not ours to echo (the library would
    echo any version from 1.0.0 up, and fail on one that is not a number), so it falls to
    the next choice; text 0.0.4 when nothing better is acceptable, as Prometheus expects."""
    best, best_q = TEXT, 0.0
    for name, args, q in _ranked(accept):
        if name == "application/openmetrics-text" and args.get("version", "1.0.0") in (
            "1.0.0",
            "",
        ):
            choice = OPENMETRICS
        elif name in ("text/plain", "text/*", "*/*"):
            choice = TEXT
        else:
            continue
        if q > best_q:  # ties: the first listed
            best, best_q = choice, q
    return best


def gzip_accepted(accept_encoding: str) -> bool:
    """gzip unless refused: by `gzip;q=0`, or by not being named where `*` is absent or
    has q=0 (RFC 9110 12.5.3)."""
    codings = {name: q for name, _, q in reversed(_ranked(accept_encoding))}
    q = codings.get("gzip", codings.get("x-gzip", codings.get("*", 0.0)))
    return q > 0
