"""cli.main in-process: a bad value exits 2 with one line naming the flag and starts nothing;
--version."""

from __future__ import annotations

import platform
import signal
import threading
from importlib import resources
from pathlib import Path

import pytest

from opta_exporter import __version__, cli
from opta_exporter.admin_key import ADMIN_KEY_ENV
from opta_exporter.config import OPTIONS, Config, config_from_values
from opta_exporter.daemon import ListenError


# -- the CLI -----------------------------------------------------------------------------
@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for opt in OPTIONS:
        monkeypatch.delenv(opt.env, raising=False)
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("argv", "flag_name"),
    [
        (["--lmx.url", "ftp://mac-studio.local:1234"], "--lmx.url"),
        (["--lmx.heartbeat-interval=-1s"], "--lmx.heartbeat-interval"),
        (["--web.listen-address", "nope"], "--web.listen-address"),
        (["--log.level", "chatty"], "--log.level"),
        (["--backoff.base", "10s", "--backoff.cap", "1s"], "--backoff.cap"),
        (["--window.duration", "0s"], "--window.duration"),
        (["--lmx.admin-key-file", "/nonexistent/opta/admin-key"], "--lmx.admin-key-file"),
    ],
)
def test_cli_invalid_value_exits_2_with_one_line(
    argv: list[str],
    flag_name: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[object] = []
    monkeypatch.setattr(cli, "Exporter", lambda *a, **k: built.append(a))
    threads_before = threading.active_count()

    assert cli.main(argv) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("\n")
    assert captured.err.count("\n") == 1
    assert flag_name in captured.err
    assert built == []  # nothing was started
    assert threading.active_count() == threads_before


@pytest.mark.usefixtures("clean_env")
def test_the_retired_window_size_flag_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--window.duration replaced it: a sample count means nothing once samples come one
    per relay read, so an old unit file fails loudly instead of being half-understood."""
    built: list[object] = []
    monkeypatch.setattr(cli, "Exporter", lambda *a, **k: built.append(a))
    with pytest.raises(SystemExit) as info:
        cli.main(["--window.size", "300"])
    assert info.value.code == 2
    assert "--window.size" in capsys.readouterr().err
    assert built == []


def test_cli_version(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """As Prometheus' tools say it; the build's revision and date, or unknown."""
    for var in cli.BUILD_ENV.values():
        monkeypatch.delenv(var, raising=False)
    assert cli.main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"opta-exporter, version {__version__} (revision: unknown)"
    assert lines[1] == "  build date:       unknown"
    assert lines[2] == f"  python version:   {platform.python_version()}"
    assert lines[3].startswith("  platform:         ")
    assert len(lines) == 4


def test_build_info_from_the_build_file_else_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"OPTA_EXPORTER_BUILD_REVISION": "abc123", "OPTA_EXPORTER_BUILD_DATE": "20261207"}
    assert cli.build_info(env) == {"revision": "abc123", "date": "20261207"}
    assert "(revision: abc123)" in cli.version_text(env).splitlines()[0]
    monkeypatch.setattr(resources, "files", lambda package: tmp_path)
    (tmp_path / cli.BUILD_INFO_FILE).write_text('{"revision": "f00d", "date": ""}')
    assert cli.build_info(env) == {"revision": "f00d", "date": "20261207"}
    (tmp_path / cli.BUILD_INFO_FILE).write_text("[not an object")
    assert cli.build_info({}) == {"revision": "unknown", "date": "unknown"}


def test_every_help_line_is_true() -> None:
    """A default shown is the default; an option without one says what unset means
    instead of a `(no default)` that contradicts it."""
    text = " ".join(cli.build_parser().format_help().split())  # argparse's wrapping undone
    assert "no default" not in text
    defaults = config_from_values({}, {})
    for opt in OPTIONS:
        assert opt.env in text
        if opt.default is not None:
            assert f"(default {opt.default})" in text
    assert "unset, 1.5 x --lmx.heartbeat-interval" in text
    assert defaults.stale_timeout == 1.5 * defaults.heartbeat_interval
    assert text.count("1.5 x") == 1


@pytest.mark.usefixtures("clean_env")
def test_repeated_listen_addresses_and_the_switch_reach_the_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Config] = []

    def refuse(config: Config, **kwargs: object) -> None:
        seen.append(config)
        raise ListenError("127.0.0.1:1", OSError(98, "Address already in use"))

    monkeypatch.setattr(cli, "Exporter", refuse)
    monkeypatch.setattr(cli, "setup_logging", lambda *args: None)  # pytest's handlers stay
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # and its signal handlers
    argv = ["--web.listen-address", "127.0.0.1:0", "--web.listen-address=[::1]:0"]
    assert cli.main([*argv, "--web.disable-exporter-metrics", "--web.max-requests", "3"]) == 1
    (config,) = seen
    assert config.listen_addresses == (("127.0.0.1", 0), ("::1", 0))
    assert config.disable_exporter_metrics is True
    assert config.max_requests == 3
