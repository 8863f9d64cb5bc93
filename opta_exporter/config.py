"""Configuration as validated data: one table of options, flags and env twins derive from it.

Every value is checked here, before any thread starts, so a typo ends the process with
one clear line (exit 2) instead of a daemon that half works.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ENV_PREFIX = "OPTA_EXPORTER_"
ADMIN_KEY_ENV = "OPTA_LMX_ADMIN_KEY"
CREDENTIAL_NAME = "admin-key"
# 9100-9999 is fully allocated on Prometheus' default-port list; 11234 sits outside it
# and echoes LMX's own default port 1234.
DEFAULT_PORT = 11234


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the option."""


@dataclass(frozen=True)
class Config:
    lmx_url: str = "http://127.0.0.1:1234"
    listen_host: str = ""
    listen_port: int = DEFAULT_PORT
    # --web.listen-address given more than once: the first is listen_host/listen_port
    extra_listen_addresses: tuple[tuple[str, int], ...] = ()
    max_requests: int = 64
    disable_exporter_metrics: bool = False
    systemd_socket: bool = False
    telemetry_path: str = "/metrics"
    web_config_file: str | None = None
    admin_key: str | None = field(default=None, repr=False)
    heartbeat_interval: float = 30.0
    stale_timeout: float = 45.0
    connect_timeout: float = 5.0
    snapshot_interval: float = 60.0
    relay_interval: float = 15.0
    health_interval: float = 15.0
    models_interval: float = 30.0
    diagnostics_interval: float = 30.0
    jobs_interval: float = 60.0
    jobs_busy_interval: float = 5.0
    batch_window: float = 0.25
    window_duration: float = 300.0
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    max_models: int = 100
    log_level: str = "info"
    log_format: str = "logfmt"

    @property
    def admin_key_set(self) -> bool:
        return self.admin_key is not None

    @property
    def listen_addresses(self) -> tuple[tuple[str, int], ...]:
        """Every address to serve on, one server each: the first, then the others."""
        return ((self.listen_host, self.listen_port), *self.extra_listen_addresses)


@dataclass(frozen=True)
class Option:
    """One setting: its flag, its env twin (derived) and how its text becomes a value."""

    flag: str
    dest: str
    help: str
    default: str | None
    # "value": takes a VALUE; "switch": a flag alone means true (its env twin: true or
    # false); "repeatable": may be given more than once (its env twin: comma-separated)
    kind: str = "value"

    @property
    def env(self) -> str:
        return ENV_PREFIX + re.sub(r"[.-]", "_", self.flag.removeprefix("--")).upper()


OPTIONS: tuple[Option, ...] = (
    Option("--lmx.url", "lmx_url", "Base URL of the LMX server.", "http://127.0.0.1:1234"),
    Option(
        "--lmx.admin-key-file",
        "admin_key_file",
        f"File holding the LMX admin key (or set {ADMIN_KEY_ENV}).",
        None,
    ),
    Option(
        "--lmx.heartbeat-interval", "heartbeat_interval", "LMX's sse_heartbeat_interval_sec.", "30s"
    ),
    Option(
        "--lmx.stale-timeout",
        "stale_timeout",
        "Silence after which the stream is stale; unset, 1.5 x --lmx.heartbeat-interval.",
        None,
    ),
    Option("--lmx.connect-timeout", "connect_timeout", "TCP connect timeout.", "5s"),
    Option(
        "--lmx.snapshot-interval",
        "snapshot_interval",
        "How often /admin/status and /admin/memory are re-read.",
        "60s",
    ),
    Option(
        "--lmx.relay-interval",
        "relay_interval",
        "How often LMX's own /admin/metrics is read and relayed; 0 turns the relay off.",
        "15s",
    ),
    Option(
        "--lmx.health-interval",
        "health_interval",
        "How often /admin/health is read: the one read LMX answers while it sheds load.",
        "15s",
    ),
    Option(
        "--lmx.models-interval",
        "models_interval",
        "How often /admin/models is read: the readiness of every loaded model.",
        "30s",
    ),
    Option(
        "--lmx.diagnostics-interval",
        "diagnostics_interval",
        "How often /admin/diagnostics is read: crash loop, quarantine, verdict, formats.",
        "30s",
    ),
    Option(
        "--lmx.jobs-interval",
        "jobs_interval",
        "How often /admin/models/downloads and /admin/quantize are read while nothing runs.",
        "60s",
    ),
    Option(
        "--lmx.jobs-busy-interval",
        "jobs_busy_interval",
        "How often they are read while a download or quantize job runs.",
        "5s",
    ),
    Option(
        "--lmx.batch-window",
        "batch_window",
        "Longest an event waits unread while a busy stream is read in batches (fewer "
        "wakeups, less CPU); a lone event is read at once, a scrape or snapshot first "
        "reads what has arrived, 8 KiB waiting ends a batch early; 0 reads every event "
        "at once.",
        "250ms",
    ),
    Option(
        "--web.listen-address",
        "listen_address",
        "Address to serve on, HOST:PORT ([::1]:PORT for IPv6, :PORT for every IPv4 address); "
        "repeat the flag (or separate by commas) to serve on several, one server each.",
        f":{DEFAULT_PORT}",
        kind="repeatable",
    ),
    Option(
        "--web.max-requests",
        "max_requests",
        "Most client connections open at once (kept ones included, a thread each); more "
        "are refused at accept.",
        "64",
    ),
    Option(
        "--web.systemd-socket",
        "systemd_socket",
        "Serve on the sockets systemd passes (socket activation, systemd/opta-exporter"
        ".socket) instead of binding --web.listen-address.",
        "false",
        kind="switch",
    ),
    Option(
        "--web.disable-exporter-metrics",
        "disable_exporter_metrics",
        "Leave the exporter's own process_* and python_* families out of the metrics.",
        "false",
        kind="switch",
    ),
    Option(
        "--web.config.file",
        "web_config_file",
        "Web config file (TLS, basic auth, response headers) in the exporter-toolkit format.",
        None,
    ),
    Option("--web.telemetry-path", "telemetry_path", "Path of the metrics.", "/metrics"),
    Option(
        "--window.duration",
        "window_duration",
        "Span of tokens/s samples (one per relay read) kept in the throughput window.",
        "5m",
    ),
    Option("--backoff.base", "backoff_base", "First reconnect delay.", "1s"),
    Option("--backoff.cap", "backoff_cap", "Longest reconnect delay.", "30s"),
    Option("--max-models", "max_models", "Distinct model label values per metric.", "100"),
    Option("--log.level", "log_level", "debug, info, warn or error.", "info"),
    Option("--log.format", "log_format", "logfmt or json.", "logfmt"),
)

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


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise ValueError(f"must be > 0, got {text!r}")
        return value

    return parse


def _non_negative(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value < 0:
            raise ValueError(f"must be >= 0, got {text!r}")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return value

    return parse


def _url(text: str) -> str:
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


def _path(text: str) -> str:
    if not text.startswith("/") or text == "/":
        raise ValueError(f"must start with / and not be / itself, got {text!r}")
    return text


def _sendable_key(key: str, source: str) -> str:
    """The key travels as the X-Admin-Key header: http.client encodes it in Latin-1 and
    refuses line breaks, so an unsendable key would fail every read of LMX, forever. Refuse
    it here with what is wrong, never the key itself."""
    for char in key:
        if char in "\r\n":
            problem = "a line break"
        elif unicodedata.category(char) == "Cc":
            problem = "a control character"
        elif ord(char) > 0xFF:
            problem = "a character outside Latin-1"
        else:
            continue
        raise ValueError(
            f"the admin key in {source} holds {problem}, which cannot be sent in the "
            "X-Admin-Key header"
        )
    return key


def _read_key(path: str) -> str:
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:  # its text would hold the bytes, i.e. part of the key
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not key:
        raise ValueError(f"{path} is empty")
    return _sendable_key(key, path)


_PARSERS: dict[str, Callable[[str], object]] = {
    "lmx_url": _url,
    "heartbeat_interval": _positive(parse_duration),
    "stale_timeout": _positive(parse_duration),
    "connect_timeout": _positive(parse_duration),
    "snapshot_interval": _positive(parse_duration),
    "relay_interval": _non_negative(parse_duration),
    "health_interval": _positive(parse_duration),
    "models_interval": _positive(parse_duration),
    "diagnostics_interval": _positive(parse_duration),
    "jobs_interval": _positive(parse_duration),
    "jobs_busy_interval": _positive(parse_duration),
    "batch_window": _non_negative(parse_duration),
    "telemetry_path": _path,
    "web_config_file": str,
    "window_duration": _positive(parse_duration),
    "backoff_base": _positive(parse_duration),
    "backoff_cap": _positive(parse_duration),
    "max_models": _positive(int),
    "max_requests": _positive(int),
    "disable_exporter_metrics": _bool,
    "systemd_socket": _bool,
    "log_level": _choice("debug", "info", "warn", "error"),
    "log_format": _choice("logfmt", "json"),
}


def _admin_key(key_file: str | None, env: Mapping[str, str]) -> str | None:
    """File flag, then the env var, then a systemd credential: never argv (visible in ps)."""
    if key_file:
        return _read_key(key_file)
    if env.get(ADMIN_KEY_ENV, "").strip():
        return _sendable_key(env[ADMIN_KEY_ENV].strip(), ADMIN_KEY_ENV)
    creds = env.get("CREDENTIALS_DIRECTORY")
    path = Path(creds) / CREDENTIAL_NAME if creds else None
    if path is not None and path.is_file():
        # The unit always loads the credential; an empty one is how "no key" is said.
        return _read_key(str(path)) if path.stat().st_size else None
    return None


def config_from_values(
    values: Mapping[str, str | None], env: Mapping[str, str] | None = None
) -> Config:
    """Merge flag values (by dest, None = not given) over env twins over defaults."""
    env = os.environ if env is None else env
    raw: dict[str, str | None] = {}
    for opt in OPTIONS:
        given = values.get(opt.dest)
        raw[opt.dest] = given if given is not None else env.get(opt.env, opt.default)
    parsed: dict[str, object] = {}
    for opt in OPTIONS:
        text = raw[opt.dest]
        try:
            if opt.dest == "admin_key_file":
                parsed["admin_key"] = _admin_key(text, env)
            elif opt.dest == "listen_address":
                first, *others = parse_listen_addresses(text or "")
                parsed["listen_host"], parsed["listen_port"] = first
                parsed["extra_listen_addresses"] = tuple(others)
            elif text is not None:
                parsed[opt.dest] = _PARSERS[opt.dest](text)
        except ValueError as exc:
            raise ConfigError(f"{opt.flag}: {exc}") from None
    heartbeat = parsed["heartbeat_interval"]
    assert isinstance(heartbeat, float)
    parsed.setdefault("stale_timeout", 1.5 * heartbeat)
    config = Config(**parsed)  # type: ignore[arg-type]
    if config.backoff_cap < config.backoff_base:
        raise ConfigError("--backoff.cap: must be >= --backoff.base")
    if config.stale_timeout <= config.heartbeat_interval:
        raise ConfigError("--lmx.stale-timeout: must exceed --lmx.heartbeat-interval")
    return config
