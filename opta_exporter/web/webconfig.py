"""TLS and basic auth for /metrics, from the web config file every Prometheus exporter reads.

The format is exporter-toolkit's (`tls_server_config`, `basic_auth_users` with bcrypt
hashes), so operators reuse the file and the habits they already have.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from opta_exporter.config import ConfigError

log = logging.getLogger(__name__)

_TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
}
_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# A bcrypt hash: version, two-digit cost (4 to 31), then 22 salt and 31 hash characters.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
# bcrypt reads at most 72 bytes of a password; the library refuses longer ones outright.
MAX_PASSWORD_BYTES = 72
# bcrypt checks at once: each takes a core for a quarter of a second at cost 12, so guesses
# must not take every core; a scraper whose pair is remembered never waits for one.
MAX_BCRYPT_CHECKS = 2
# How long a request waits for a free check before it is refused as busy (429).
BCRYPT_WAIT = 1.0
RETRY_AFTER = 1  # seconds, the Retry-After of a busy refusal
# A spell of refusals is over when none came for this long; each spell is said once.
SPELL_QUIET = 60.0


# http_server_config.headers: exporter-toolkit allows these and no other (so every exporter
# of the ecosystem says the same), some with a fixed set of values; names as it spells them.
EXTRA_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}


@dataclass(frozen=True)
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict, repr=False)
    headers: tuple[tuple[str, str], ...] = ()  # added to every response


def _headers(http: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """http_server_config as exporter-toolkit reads it: `headers` from its allowed set;
    `http2` is accepted and means nothing here (HTTP/1.1 is served, as Prometheus scrapes)."""
    unknown = set(http) - {"headers", "http2"}
    if unknown:
        raise ConfigError(f"--web.config.file: unknown http_server_config keys: {sorted(unknown)}")
    if "http2" in http and not isinstance(http["http2"], bool):
        raise ConfigError("--web.config.file: http_server_config.http2 must be true or false")
    headers = _mapping(http.get("headers"), "http_server_config.headers")
    for name, value in headers.items():
        allowed = EXTRA_HEADERS.get(name)
        if allowed is None:
            raise ConfigError(
                f"--web.config.file: HTTP header {name!r} can not be configured "
                f"(only {', '.join(EXTRA_HEADERS)})"
            )
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ConfigError(f"--web.config.file: header {name} needs a one-line string")
        if allowed and value not in allowed:
            raise ConfigError(
                f"--web.config.file: invalid value for {name}: expected one of "
                f"{', '.join(allowed)}, got {value!r}"
            )
    return tuple((name, value) for name, value in headers.items() if value)  # blank: unset


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"--web.config.file: {where} must be a mapping")
    return value


def _tls_context(tls: dict[str, Any], base: Path) -> ssl.SSLContext:
    unknown = set(tls) - _TLS_KEYS
    if unknown:
        raise ConfigError(f"--web.config.file: unknown tls_server_config keys: {sorted(unknown)}")
    if not tls.get("cert_file") or not tls.get("key_file"):
        raise ConfigError("--web.config.file: tls_server_config needs cert_file and key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS.get(
        str(tls.get("min_version", "TLS12")), ssl.TLSVersion.TLSv1_2
    )
    if "max_version" in tls:
        context.maximum_version = _VERSIONS.get(str(tls["max_version"]), ssl.TLSVersion.TLSv1_3)
    try:
        context.load_cert_chain(base / str(tls["cert_file"]), base / str(tls["key_file"]))
        mode = str(tls.get("client_auth_type", "NoClientCert"))
        if mode not in _CLIENT_AUTH:
            raise ConfigError(f"--web.config.file: client_auth_type {mode!r} is not supported")
        context.verify_mode = _CLIENT_AUTH[mode]
        if context.verify_mode != ssl.CERT_NONE:
            context.load_verify_locations(base / str(tls.get("client_ca_file", "")))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--web.config.file: TLS: {exc}") from None
    return context


def load_web_config(path: str) -> WebConfig:
    """Relative certificate paths are relative to the file, as in exporter-toolkit."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--web.config.file: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--web.config.file: not YAML: {exc}") from None
    doc = _mapping(raw, "the file")
    unknown = set(doc) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise ConfigError(f"--web.config.file: unknown keys: {sorted(unknown)}")
    tls = _mapping(doc.get("tls_server_config"), "tls_server_config")
    users = _mapping(doc.get("basic_auth_users"), "basic_auth_users")
    hashes: dict[str, bytes] = {}
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            raise ConfigError(f"--web.config.file: user {user!r} needs a bcrypt hash")
        hashes[user] = hashed.encode()
    context = _tls_context(tls, Path(path).resolve().parent) if tls else None
    headers = _headers(_mapping(doc.get("http_server_config"), "http_server_config"))
    return WebConfig(tls=context, users=hashes, headers=headers)


class AuthResult(enum.Enum):
    OK = "ok"
    DENIED = "denied"  # 401
    BUSY = "busy"  # too many bcrypt checks at once: 429, Retry-After: RETRY_AFTER


def bcrypt_cost(hashed: bytes) -> int:
    """The cost (log2 rounds) of a hash, from its prefix: `$2b$12$...` is 12."""
    return int(hashed[4:6])


class _Spell:
    """Says a repeated refusal once per spell: again only after SPELL_QUIET without one."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def begins(self) -> bool:
        now = self._clock()
        with self._lock:
            begins = self._last is None or now - self._last >= SPELL_QUIET
            self._last = now
        return begins


def _credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password.encode()) if sep else None


class BasicAuth:
    """Checks `Authorization: Basic`; remembers good pairs, because bcrypt is slow on
    purpose and a scrape every few seconds must not cost a bcrypt each.

    What an unauthenticated client can make it do is bounded: a password over 72 bytes is
    refused before bcrypt; at most `max_checks` bcrypt checks run at once, and a request
    that finds none free within `wait` seconds is refused as BUSY; an unknown user is
    checked against a hash of the configured cost, so it costs what a known one does.
    """

    def __init__(
        self,
        users: dict[str, bytes],
        *,
        max_checks: int = MAX_BCRYPT_CHECKS,
        wait: float = BCRYPT_WAIT,
        checker: Callable[[bytes, bytes], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for user, hashed in users.items():
            if not _BCRYPT_HASH.fullmatch(hashed.decode("ascii", "replace")):
                raise ValueError(f"user {user!r} needs a bcrypt hash")
        self._users = users
        self._good: set[bytes] = set()
        self._lock = threading.Lock()
        self._max_checks = max_checks
        self._slots = threading.BoundedSemaphore(max_checks)
        self._wait = wait
        self._checker = checker or bcrypt.checkpw
        self._too_long = _Spell(clock)
        self._busy = _Spell(clock)
        # Checked against when the user is unknown, so a wrong name costs as long as a wrong
        # password: the dearest configured cost, as an attacker would probe the dearest user.
        cost = max((bcrypt_cost(h) for h in users.values()), default=4)
        self.dummy_hash = bcrypt.hashpw(b"opta-exporter-dummy", bcrypt.gensalt(rounds=cost))

    def allows(self, header: str | None) -> bool:
        return self.check(header) is AuthResult.OK

    def check(self, header: str | None) -> AuthResult:
        pair = _credentials(header)
        if pair is None:
            return AuthResult.DENIED
        user, password = pair
        if len(password) > MAX_PASSWORD_BYTES:
            # bcrypt cannot check it, so no configured hash can match it
            if self._too_long.begins():
                log.warning(
                    "basic auth: refused a password over %d bytes (bcrypt's limit); "
                    "further ones are refused without a word",
                    MAX_PASSWORD_BYTES,
                )
            return AuthResult.DENIED
        hashed = self._users.get(user)
        token = hashlib.sha256(user.encode() + b"\0" + password).digest()
        with self._lock:
            if any(hmac.compare_digest(token, good) for good in self._good):
                return AuthResult.OK if hashed is not None else AuthResult.DENIED
        if not self._slots.acquire(timeout=self._wait):
            if self._busy.begins():
                log.warning(
                    "basic auth: %d password checks already running; requests whose "
                    "password is not yet known good are refused as busy until one is free",
                    self._max_checks,
                )
            return AuthResult.BUSY
        try:
            ok = self._checker(password, hashed if hashed is not None else self.dummy_hash)
        except ValueError:  # what bcrypt raises on an input it cannot take: not a match
            ok = False
        finally:
            self._slots.release()
        if ok and hashed is not None:
            with self._lock:
                if len(self._good) < 64:
                    self._good.add(token)
            return AuthResult.OK
        return AuthResult.DENIED
