"""config_from_values: defaults, env twins, durations, every refusal, the admin key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opta_exporter.admin_key import ADMIN_KEY_ENV
from opta_exporter.config import (
    OPTIONS,
    Config,
    ConfigError,
    Option,
    config_from_values,
)

NO_ENV: dict[str, str] = {}


def option(dest: str) -> Option:
    return next(opt for opt in OPTIONS if opt.dest == dest)


def flag(dest: str) -> str:
    return option(dest).flag


# -- defaults ----------------------------------------------------------------------------
def test_defaults() -> None:
    config = config_from_values({}, NO_ENV)
    assert config.lmx_url == "http://127.0.0.1:1234"
    assert config.listen_host == ""
    assert config.listen_port == 11234
    assert config.telemetry_path == "/metrics"
    assert config.listen_addresses == (("", 11234),)
    assert config.max_requests == 64
    assert config.disable_exporter_metrics is False
    assert config.heartbeat_interval == 30.0
    assert config.stale_timeout == 45.0
    assert config.snapshot_interval == 60.0
    assert config.window_duration == 300.0  # five minutes of tokens/s samples
    assert config.backoff_base == 1.0
    assert config.backoff_cap == 30.0
    assert config.max_models == 100
    assert config.relay_interval == 15.0  # the contract's relay default
    assert config.log_level == "info"
    assert config.log_format == "logfmt"
    assert config.admin_key is None
    assert not config.admin_key_set


def test_all_none_values_mean_defaults() -> None:
    """argparse hands every dest in, None when the flag was not given."""
    values: dict[str, str | None] = {opt.dest: None for opt in OPTIONS}
    assert config_from_values(values, NO_ENV) == config_from_values({}, NO_ENV)


@pytest.mark.parametrize(
    ("heartbeat", "stale"),
    [("30s", 45.0), ("10s", 15.0), ("1m", 90.0), ("2", 3.0)],
)
def test_stale_timeout_defaults_to_one_and_a_half_heartbeats(heartbeat: str, stale: float) -> None:
    config = config_from_values({"heartbeat_interval": heartbeat}, NO_ENV)
    assert config.stale_timeout == stale


# -- env twins ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag_name", "env_name"),
    [
        ("--lmx.url", "OPTA_EXPORTER_LMX_URL"),
        ("--lmx.admin-key-file", "OPTA_EXPORTER_LMX_ADMIN_KEY_FILE"),
        ("--lmx.heartbeat-interval", "OPTA_EXPORTER_LMX_HEARTBEAT_INTERVAL"),
        ("--web.listen-address", "OPTA_EXPORTER_WEB_LISTEN_ADDRESS"),
        ("--web.telemetry-path", "OPTA_EXPORTER_WEB_TELEMETRY_PATH"),
        ("--max-models", "OPTA_EXPORTER_MAX_MODELS"),
        ("--log.format", "OPTA_EXPORTER_LOG_FORMAT"),
    ],
)
def test_env_twin_names(flag_name: str, env_name: str) -> None:
    opt = next(o for o in OPTIONS if o.flag == flag_name)
    assert opt.env == env_name


def test_env_twins_are_unique_and_prefixed() -> None:
    names = [opt.env for opt in OPTIONS]
    assert len(set(names)) == len(names)
    assert all(name.startswith("OPTA_EXPORTER_") for name in names)


# dest, text given, attribute, expected value
VALID: list[tuple[str, str, str, object]] = [
    ("lmx_url", "http://mac-studio.local:1234/", "lmx_url", "http://mac-studio.local:1234"),
    ("lmx_url", "https://lmx.example:8443", "lmx_url", "https://lmx.example:8443"),
    ("heartbeat_interval", "10s", "heartbeat_interval", 10.0),
    ("stale_timeout", "90s", "stale_timeout", 90.0),
    ("connect_timeout", "500ms", "connect_timeout", 0.5),
    ("snapshot_interval", "2m", "snapshot_interval", 120.0),
    ("listen_address", "127.0.0.1:9999", "listen_port", 9999),
    ("listen_address", "127.0.0.1:9999", "listen_host", "127.0.0.1"),
    ("listen_address", "[::1]:9100", "listen_host", "::1"),
    ("listen_address", ":9100", "extra_listen_addresses", ()),
    (
        "listen_address",
        "127.0.0.1:9100, [::1]:9100,:0",
        "listen_addresses",
        (("127.0.0.1", 9100), ("::1", 9100), ("", 0)),
    ),
    ("listen_address", "127.0.0.1:0,127.0.0.1:0", "listen_addresses", (("127.0.0.1", 0),) * 2),
    ("max_requests", "8", "max_requests", 8),
    ("disable_exporter_metrics", "true", "disable_exporter_metrics", True),
    ("disable_exporter_metrics", "False", "disable_exporter_metrics", False),
    ("telemetry_path", "/probe/metrics", "telemetry_path", "/probe/metrics"),
    ("window_duration", "10m", "window_duration", 600.0),
    ("window_duration", "90", "window_duration", 90.0),
    ("window_duration", "1500ms", "window_duration", 1.5),
    ("backoff_base", "2s", "backoff_base", 2.0),
    ("backoff_cap", "1m", "backoff_cap", 60.0),
    ("max_models", "7", "max_models", 7),
    ("log_level", "DEBUG", "log_level", "debug"),
    ("log_level", "warn", "log_level", "warn"),
    ("log_format", "json", "log_format", "json"),
]


@pytest.mark.parametrize(("dest", "text", "attr", "expected"), VALID)
def test_flag_value(dest: str, text: str, attr: str, expected: object) -> None:
    assert getattr(config_from_values({dest: text}, NO_ENV), attr) == expected


@pytest.mark.parametrize(("dest", "text", "attr", "expected"), VALID)
def test_env_twin_value(dest: str, text: str, attr: str, expected: object) -> None:
    assert getattr(config_from_values({}, {option(dest).env: text}), attr) == expected


def test_flag_wins_over_env() -> None:
    env = {
        "OPTA_EXPORTER_LMX_URL": "http://from-env:1",
        "OPTA_EXPORTER_MAX_MODELS": "5",
    }
    config = config_from_values({"lmx_url": "http://from-flag:2", "max_models": None}, env)
    assert config.lmx_url == "http://from-flag:2"
    assert config.max_models == 5  # not given as a flag: the env twin applies


def test_valid_flag_hides_invalid_env_twin() -> None:
    config = config_from_values({"log_level": "error"}, {"OPTA_EXPORTER_LOG_LEVEL": "loud"})
    assert config.log_level == "error"


def test_invalid_env_twin_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=re.escape("--window.duration")):
        config_from_values({}, {"OPTA_EXPORTER_WINDOW_DURATION": "a while"})


# -- durations ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2m", 120.0),
        ("30", 30.0),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("1h", 3600.0),
        (" 5s ", 5.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert config_from_values({"connect_timeout": text}, NO_ENV).connect_timeout == seconds


# -- refusals: each names its flag, in one line ------------------------------------------
INVALID: list[tuple[str, dict[str, str], str]] = [
    # bad URLs
    ("not a URL", {"lmx_url": "mac-studio.local:1234"}, "--lmx.url"),
    ("wrong scheme", {"lmx_url": "ftp://mac-studio.local:1234"}, "--lmx.url"),
    ("no host", {"lmx_url": "http://"}, "--lmx.url"),
    ("empty URL", {"lmx_url": ""}, "--lmx.url"),
    ("URL with credentials", {"lmx_url": "http://admin:s3cret@mac-studio.local:1234"}, "--lmx.url"),
    ("URL with user only", {"lmx_url": "http://admin@mac-studio.local:1234"}, "--lmx.url"),
    ("URL with a query", {"lmx_url": "http://mac-studio.local:1234/?admin_key=k"}, "--lmx.url"),
    ("URL port out of range", {"lmx_url": "http://mac-studio.local:99999"}, "--lmx.url"),
    ("URL port not a number", {"lmx_url": "http://mac-studio.local:port"}, "--lmx.url"),
    # durations
    ("negative heartbeat", {"heartbeat_interval": "-1s"}, "--lmx.heartbeat-interval"),
    ("zero heartbeat", {"heartbeat_interval": "0"}, "--lmx.heartbeat-interval"),
    ("word heartbeat", {"heartbeat_interval": "soon"}, "--lmx.heartbeat-interval"),
    ("zero stale", {"stale_timeout": "0s"}, "--lmx.stale-timeout"),
    ("negative stale", {"stale_timeout": "-5"}, "--lmx.stale-timeout"),
    ("zero connect timeout", {"connect_timeout": "0ms"}, "--lmx.connect-timeout"),
    ("negative snapshot interval", {"snapshot_interval": "-1m"}, "--lmx.snapshot-interval"),
    ("unknown unit", {"snapshot_interval": "5d"}, "--lmx.snapshot-interval"),
    ("zero backoff base", {"backoff_base": "0"}, "--backoff.base"),
    ("negative backoff cap", {"backoff_cap": "-1s"}, "--backoff.cap"),
    ("zero window", {"window_duration": "0"}, "--window.duration"),
    ("negative window", {"window_duration": "-5m"}, "--window.duration"),
    ("word window", {"window_duration": "300 samples"}, "--window.duration"),
    # counts
    ("zero max models", {"max_models": "0"}, "--max-models"),
    ("word max models", {"max_models": "many"}, "--max-models"),
    # listen address
    ("no port", {"listen_address": "9100"}, "--web.listen-address"),
    ("port not a number", {"listen_address": ":abc"}, "--web.listen-address"),
    ("port out of range", {"listen_address": ":65536"}, "--web.listen-address"),
    ("empty port", {"listen_address": "localhost:"}, "--web.listen-address"),
    ("empty address", {"listen_address": ""}, "--web.listen-address"),
    ("same address twice", {"listen_address": ":9100,:9100"}, "--web.listen-address"),
    ("one of several bad", {"listen_address": ":9100,nope"}, "--web.listen-address"),
    ("trailing comma", {"listen_address": ":9100,"}, "--web.listen-address"),
    # the connection cap: a positive count, no "0 = unlimited"
    ("zero max requests", {"max_requests": "0"}, "--web.max-requests"),
    ("negative max requests", {"max_requests": "-1"}, "--web.max-requests"),
    ("word max requests", {"max_requests": "lots"}, "--web.max-requests"),
    ("not a switch value", {"disable_exporter_metrics": "maybe"}, "--web.disable-exporter-metrics"),
    # logging
    ("bad log level", {"log_level": "verbose"}, "--log.level"),
    ("empty log level", {"log_level": ""}, "--log.level"),
    ("bad log format", {"log_format": "xml"}, "--log.format"),
    # paths
    ("relative telemetry path", {"telemetry_path": "metrics"}, "--web.telemetry-path"),
    ("empty telemetry path", {"telemetry_path": ""}, "--web.telemetry-path"),
    # cross-field
    ("cap below base", {"backoff_base": "10s", "backoff_cap": "5s"}, "--backoff.cap"),
    ("stale equal to heartbeat", {"stale_timeout": "30s"}, "--lmx.stale-timeout"),
    (
        "stale below heartbeat",
        {"heartbeat_interval": "1m", "stale_timeout": "45s"},
        "--lmx.stale-timeout",
    ),
]


@pytest.mark.parametrize(
    ("values", "flag_name"),
    [pytest.param(values, name, id=case) for case, values, name in INVALID],
)
def test_invalid_value_names_the_flag(values: dict[str, str], flag_name: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_values(values, NO_ENV)
    message = str(info.value)
    assert flag_name in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("0s", 0.0), ("30s", 30.0)])
def test_relay_interval_zero_turns_the_relay_off(text: str, seconds: float) -> None:
    assert config_from_values({"relay_interval": text}, NO_ENV).relay_interval == seconds


@pytest.mark.parametrize("text", ["-1s", "soon"])
def test_relay_interval_refusals(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("--lmx.relay-interval")):
        config_from_values({"relay_interval": text}, NO_ENV)


def test_cap_equal_to_base_is_fine() -> None:
    config = config_from_values({"backoff_base": "5s", "backoff_cap": "5s"}, NO_ENV)
    assert config.backoff_cap == config.backoff_base == 5.0


@pytest.mark.parametrize(
    "url",
    [
        "http://admin:s3cr3t-key@mac-studio.local:1234",
        "http://mac-studio.local:1234/admin/events?admin_key=s3cr3t-key",
        # the refusal for the scheme must not echo a key carried in the same URL
        "ftp://mac-studio.local:1234/?admin_key=s3cr3t-key",
        "mac-studio.local:1234/?x_admin_key=s3cr3t-key",
    ],
)
def test_url_refusal_never_echoes_a_key(url: str) -> None:
    """Protocol: a key in a URL leaks into logs; the error goes to stderr/journald."""
    with pytest.raises(ConfigError) as info:
        config_from_values({"lmx_url": url}, NO_ENV)
    assert "s3cr3t-key" not in str(info.value)


# -- the admin key -----------------------------------------------------------------------
def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_admin_key_from_file_is_stripped(tmp_path: Path) -> None:
    key_file = write(tmp_path / "key", "  s3cret-key\n\n")
    config = config_from_values({"admin_key_file": key_file}, NO_ENV)
    assert config.admin_key == "s3cret-key"
    assert config.admin_key_set


def test_admin_key_file_from_env_twin(tmp_path: Path) -> None:
    key_file = write(tmp_path / "key", "k-from-env-file\n")
    config = config_from_values({}, {"OPTA_EXPORTER_LMX_ADMIN_KEY_FILE": key_file})
    assert config.admin_key == "k-from-env-file"


@pytest.mark.parametrize("content", ["", "   \n\t\n"])
def test_empty_admin_key_file_is_refused(tmp_path: Path, content: str) -> None:
    key_file = write(tmp_path / "key", content)
    with pytest.raises(ConfigError, match=re.escape("--lmx.admin-key-file")):
        config_from_values({"admin_key_file": key_file}, NO_ENV)


def test_missing_admin_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("--lmx.admin-key-file")):
        config_from_values({"admin_key_file": str(tmp_path / "absent")}, NO_ENV)


def test_admin_key_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("--lmx.admin-key-file")):
        config_from_values({"admin_key_file": str(tmp_path)}, NO_ENV)


def test_admin_key_from_env() -> None:
    config = config_from_values({}, {ADMIN_KEY_ENV: " env-key \n"})
    assert ADMIN_KEY_ENV == "OPTA_LMX_ADMIN_KEY"
    assert config.admin_key == "env-key"


def test_blank_admin_key_env_means_no_key() -> None:
    assert config_from_values({}, {ADMIN_KEY_ENV: "  "}).admin_key is None


def test_admin_key_from_systemd_credential(tmp_path: Path) -> None:
    write(tmp_path / "admin-key", "cred-key\n")
    config = config_from_values({}, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.admin_key == "cred-key"


def test_empty_systemd_credential_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "admin-key", "\n")
    with pytest.raises(ConfigError):
        config_from_values({}, {"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_credentials_directory_without_key_means_no_key(tmp_path: Path) -> None:
    write(tmp_path / "other-credential", "x")
    assert config_from_values({}, {"CREDENTIALS_DIRECTORY": str(tmp_path)}).admin_key is None


def test_admin_key_precedence(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    write(creds / "admin-key", "cred-key")
    key_file = write(tmp_path / "key", "file-key")
    env = {ADMIN_KEY_ENV: "env-key", "CREDENTIALS_DIRECTORY": str(creds)}
    assert config_from_values({"admin_key_file": key_file}, env).admin_key == "file-key"
    assert config_from_values({}, env).admin_key == "env-key"
    del env[ADMIN_KEY_ENV]
    assert config_from_values({}, env).admin_key == "cred-key"


def test_admin_key_never_in_repr_or_str(tmp_path: Path) -> None:
    key = "very-secret-admin-key-7f3a"
    configs: list[Config] = [
        config_from_values({"admin_key_file": write(tmp_path / "key", key)}, NO_ENV),
        config_from_values({}, {ADMIN_KEY_ENV: key}),
        Config(admin_key=key),
    ]
    for config in configs:
        assert config.admin_key == key
        assert key not in repr(config)
        assert key not in str(config)
        assert key not in f"{config}"


def test_an_empty_systemd_credential_means_no_key(tmp_path: Path) -> None:
    (tmp_path / "admin-key").write_text("")
    config = config_from_values({}, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.admin_key is None


UNSENDABLE_KEYS = [
    ("check mark", "s3cr3t-✓-key", "outside Latin-1"),
    ("line break inside", "s3cr3t\nkey", "line break"),
    ("carriage return inside", "s3cr3t\rkey", "line break"),
    ("escape", "s3cr3t\x1bkey", "control character"),
    ("tab", "s3cr3t\tkey", "control character"),
    ("nul", "s3cr3t\x00key", "control character"),
    ("c1 control", "s3cr3t\x85key", "control character"),
    ("not utf-8 in the env (surrogate-escaped)", "s3cr3t\udcffkey", "outside Latin-1"),
]


@pytest.mark.parametrize(
    ("key", "problem"), [c[1:] for c in UNSENDABLE_KEYS], ids=[c[0] for c in UNSENDABLE_KEYS]
)
@pytest.mark.parametrize("source", ["file", "env"])
def test_unsendable_admin_key_is_refused_without_echoing_it(
    tmp_path: Path, key: str, problem: str, source: str
) -> None:
    """Before: accepted, then every read of LMX failed building the X-Admin-Key header."""
    if source == "file":
        path = tmp_path / "key"
        path.write_bytes(key.encode("utf-8", "surrogateescape"))
        values, env = {"admin_key_file": str(path)}, NO_ENV
    else:
        values, env = {}, {ADMIN_KEY_ENV: key}
    with pytest.raises(ConfigError) as info:
        config_from_values(values, env)
    message = str(info.value)
    assert message.startswith("--lmx.admin-key-file: ")
    assert "\n" not in message
    assert "s3cr3t" not in message  # no part of the key, nor the offending character
    assert next(c for c in key if not " " <= c <= "~") not in message
    # bytes that are not UTF-8 in a file: refused as such, before any character exists
    assert ("not UTF-8 text" if source == "file" and "\udcff" in key else problem) in message
    assert (ADMIN_KEY_ENV if source == "env" else str(tmp_path)) in message


def test_a_trailing_newline_is_stripped_an_inner_one_refused(tmp_path: Path) -> None:
    assert config_from_values({"admin_key_file": write(tmp_path / "a", "k-1\n")}, NO_ENV)
    with pytest.raises(ConfigError, match="line break"):
        config_from_values({"admin_key_file": write(tmp_path / "b", "k-1\nk-2\n")}, NO_ENV)


def test_a_latin_1_key_is_accepted(tmp_path: Path) -> None:
    """Latin-1 goes into a header as it is: refusing it would break a working key."""
    key = "clé-secrète ÿ"
    assert config_from_values({}, {ADMIN_KEY_ENV: key}).admin_key == key
