"""The LaunchDaemon: a valid plist, a dedicated user, flags the exporter accepts, and the
admin key read from a file, never written inline."""

from __future__ import annotations

import plistlib
import re
from pathlib import Path
from typing import Any

import pytest

from opta_exporter.admin_key import ADMIN_KEY_ENV
from opta_exporter.cli import build_parser
from opta_exporter.config import config_from_values
from tests.helpers import ROOT

PLIST = ROOT / "launchd" / "com.opta.exporter.plist"
KEY_FILE = "/usr/local/etc/opta-exporter/admin-key"


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    with PLIST.open("rb") as handle:
        loaded: dict[str, Any] = plistlib.load(handle)
    return loaded


def test_a_daemon_that_stays_up_as_its_own_user(job: dict[str, Any]) -> None:
    assert job["Label"] == PLIST.stem == "com.opta.exporter"
    assert job["UserName"] == job["GroupName"] == "_opta_exporter"
    assert job["RunAtLoad"] is True
    assert job["KeepAlive"] is True
    assert job["StandardOutPath"] == job["StandardErrorPath"]
    assert job["StandardErrorPath"] == "/usr/local/var/log/opta-exporter.log"
    assert job["Umask"] == 0o077
    assert job["ProgramArguments"][0] == "/usr/local/bin/opta-exporter"  # pipx --global


def test_its_arguments_are_flags_the_exporter_accepts(job: dict[str, Any], tmp_path: Path) -> None:
    argv = list(job["ProgramArguments"][1:])
    args = build_parser().parse_args(argv)  # an unknown flag exits 2 here
    assert args.admin_key_file == KEY_FILE
    key = tmp_path / "admin-key"
    key.write_text("the-key\n")
    values = {  # as cli.main hands them on: a repeated flag's values joined
        dest: ",".join(value) if isinstance(value, list) else value
        for dest, value in vars(args).items()
    } | {"admin_key_file": str(key)}  # the real file is on the Mac
    config = config_from_values(values, env={})
    assert config.admin_key == "the-key"
    assert config.lmx_url == "http://127.0.0.1:1234"  # beside LMX: its admin API stays local
    assert config.listen_port == 11234


def test_no_key_inline(job: dict[str, Any]) -> None:
    text = PLIST.read_text()
    assert ADMIN_KEY_ENV not in text
    assert "EnvironmentVariables" not in job
    assert "X-Admin-Key" not in text
    args = job["ProgramArguments"]
    assert args[args.index("--lmx.admin-key-file") + 1] == KEY_FILE
    assert not any(re.fullmatch(r"--lmx\.admin-key(=.*)?", a) for a in args)
