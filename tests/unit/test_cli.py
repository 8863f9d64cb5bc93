"""cli.main in-process: a bad value exits 2 with one line naming the flag and starts nothing;
--version."""

from __future__ import annotations

import threading

import pytest

from opta_exporter import __version__, cli
from opta_exporter.config import ADMIN_KEY_ENV, OPTIONS


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


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"opta-exporter {__version__}"
