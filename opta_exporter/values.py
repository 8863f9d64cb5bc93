"""Flag and env values as text -> typed values: durations, addresses, URLs, paths and
the checks the options share. Each raises ValueError with what is wrong; config.py adds
which option it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """`30`, `30s`, `500ms`, `2m`: Prometheus-style durations, in seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 500ms, 2m)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


def parse_listen_addresses(text: str) -> list[tuple[str, int]]:
    """One address or several, separated by commas."""
    addresses = [parse_listen_address(part.strip()) for part in text.split(",")]
    fixed = [address for address in addresses if address[1]]  # port 0: each its own
    if len(set(fixed)) < len(fixed):
        raise ValueError(f"the same address twice: {text!r}")
    return addresses


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise ValueError(f"must be > 0, got {text!r}")
        return value

    return parse


def non_negative(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value < 0:
            raise ValueError(f"must be >= 0, got {text!r}")
        return value

    return parse


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return value

    return parse


def url(text: str) -> str:
    """Errors name the part that is wrong, never echo the URL: it may hold a key."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    try:
        parts.port  # noqa: B018 - urllib validates the port only when asked
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    if parts.username or parts.password or parts.query:
        raise ValueError("must not carry credentials or a query: the key goes in a file")
    return text.rstrip("/")


def path(text: str) -> str:
    if not text.startswith("/") or text == "/":
        raise ValueError(f"must start with / and not be / itself, got {text!r}")
    return text
