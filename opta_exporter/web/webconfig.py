"""TLS and basic auth for /metrics, from the web config file every Prometheus exporter reads.

The format is exporter-toolkit's (`tls_server_config`, `basic_auth_users` with bcrypt
hashes), so operators reuse the file and the habits they already have.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from opta_exporter.config import ConfigError

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
# Checked against when the user is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"opta-exporter-dummy", bcrypt.gensalt(rounds=10))


@dataclass(frozen=True)
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict, repr=False)


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
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"--web.config.file: user {user!r} needs a bcrypt hash")
        hashes[user] = hashed.encode()
    context = _tls_context(tls, Path(path).resolve().parent) if tls else None
    return WebConfig(tls=context, users=hashes)


class BasicAuth:
    """Checks `Authorization: Basic`; remembers good pairs, because bcrypt is slow on
    purpose and a scrape every few seconds must not cost a bcrypt each."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        self._good: set[bytes] = set()
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = (
                base64.b64decode(header[6:], validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self._users.get(user)
        token = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            if any(hmac.compare_digest(token, good) for good in self._good):
                return hashed is not None
        ok = bcrypt.checkpw(password.encode(), hashed if hashed is not None else _DUMMY_HASH)
        if ok and hashed is not None:
            with self._lock:
                if len(self._good) < 64:
                    self._good.add(token)
            return True
        return False
