"""Log lines: logfmt that a logfmt parser splits back, JSON that parses, levels honoured."""

from __future__ import annotations

import json
import logging
import shlex

import pytest

from opta_exporter.logs import JsonFormatter, LogfmtFormatter, setup_logging


def record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("opta_exporter.stream.consumer", level, __file__, 1, msg, None, None)


@pytest.mark.parametrize(
    "msg", ["plain", 'with "quotes" and = signs', "two\nlines", "back\\slash", ""]
)
def test_logfmt_round_trips(msg: str) -> None:
    line = LogfmtFormatter().format(record(msg))
    assert "\n" not in line
    fields = dict(part.split("=", 1) for part in shlex.split(line.replace("\\n", "\n")))
    assert fields["level"] == "warn"
    assert fields["logger"] == "opta_exporter.stream.consumer"
    assert fields["msg"] == msg


def test_json_lines_parse() -> None:
    line = JsonFormatter().format(record('bad event "x"\n', logging.INFO))
    doc = json.loads(line)
    assert doc["level"] == "info"
    assert doc["msg"] == 'bad event "x"\n'
    assert doc["ts"].endswith("+00:00")


def test_setup_logging_sets_level_and_format(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("warn", "json")
        logging.getLogger("opta_exporter.x").info("hidden")
        logging.getLogger("opta_exporter.x").warning("shown")
        lines = capsys.readouterr().err.strip().splitlines()
        assert [json.loads(line)["msg"] for line in lines] == ["shown"]
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
