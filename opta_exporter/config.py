"""Configuration as validated data: one table of options, flags and env twins derive from it.

Every value is checked here, before any thread starts, so a typo ends the process with
one clear line (exit 2) instead of a daemon that half works.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from opta_exporter.admin_key import ADMIN_KEY_ENV, admin_key
from opta_exporter.values import (
    boolean,
    choice,
    non_negative,
    parse_duration,
    parse_listen_addresses,
    path,
    positive,
    url,
)

ENV_PREFIX = "OPTA_EXPORTER_"
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

_PARSERS: dict[str, Callable[[str], object]] = {
    "lmx_url": url,
    "heartbeat_interval": positive(parse_duration),
    "stale_timeout": positive(parse_duration),
    "connect_timeout": positive(parse_duration),
    "snapshot_interval": positive(parse_duration),
    "relay_interval": non_negative(parse_duration),
    "health_interval": positive(parse_duration),
    "models_interval": positive(parse_duration),
    "diagnostics_interval": positive(parse_duration),
    "jobs_interval": positive(parse_duration),
    "jobs_busy_interval": positive(parse_duration),
    "batch_window": non_negative(parse_duration),
    "telemetry_path": path,
    "web_config_file": str,
    "window_duration": positive(parse_duration),
    "backoff_base": positive(parse_duration),
    "backoff_cap": positive(parse_duration),
    "max_models": positive(int),
    "max_requests": positive(int),
    "disable_exporter_metrics": boolean,
    "systemd_socket": boolean,
    "log_level": choice("debug", "info", "warn", "error"),
    "log_format": choice("logfmt", "json"),
}


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
                parsed["admin_key"] = admin_key(text, env)
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
