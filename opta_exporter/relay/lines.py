"""LMX's own /admin/metrics text -> its header lines and samples, repairing LMX's
escaping defect, line by line. No I/O.

LMX pastes label values into its exposition unescaped: a model id holding `"` or `\\`
(local GGUF paths can) yields `m{model="/m/we"ird\\x.gguf"} 3`, and Prometheus rejects
the whole scrape. Each line is checked against the text format; where it fails but reads
as LMX's raw `name{label="<literal>",...} value`, it is re-escaped and checked again.
What cannot be read (a newline inside an id splits a line in two; truncated lines; a
proxy's HTML) is dropped line by line, never the whole read.

Samples are read with the same expressions that validate them: prometheus_client's
parser walks label values a character at a time, which made it the relay's largest cost
on the host that runs inference (bench/README.md, "the relay was the hidden cost").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from sys import intern

from opta_exporter.core.labels import escape_label

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_ESCAPED = r'"(?:[^"\\\n]|\\[\\"n])*"'
_NUMBER = r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|(?i:inf(?:inity)?|nan))"
_TAIL = rf"[ \t]+(?P<value>{_NUMBER})(?:[ \t]+-?\d+)?[ \t]*"
_LABELS_OK = rf"(?:{_LABEL}={_ESCAPED}(?:,{_LABEL}={_ESCAPED})*,?)?"
# A sample line exactly as the text format allows it (what Prometheus itself accepts).
_VALID_SAMPLE = re.compile(rf"(?P<name>{_NAME})(?:\{{(?P<labels>{_LABELS_OK})\}})?{_TAIL}")
_LABEL_PAIR = re.compile(rf"({_LABEL})=({_ESCAPED})")
_UNESCAPE = re.compile(r'\\[\\n"]')
_UNESCAPED = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
# LMX's own shape: labels up to the last `}` before the value, values written raw.
_RAW_SAMPLE = re.compile(rf"(?P<name>{_NAME})\{{(?P<labels>.*)\}}{_TAIL}")
# A raw value runs to the first `"` that is followed by `,next_label="` or ends the labels.
_RAW_LABEL = re.compile(rf'({_LABEL})="(.*?)"(?:,(?={_LABEL}=")|,?\Z)')
_HEADER = re.compile(
    rf"#[ \t]+(?:HELP[ \t]+{_NAME}(?:[ \t].*)?"
    rf"|TYPE[ \t]+(?P<name>{_NAME})[ \t]+(?P<type>counter|gauge|histogram|summary|untyped))"
)


@dataclass(frozen=True, slots=True)  # ~1,500 of them at 100 models, kept between reads
class RelaySample:
    name: str  # as LMX wrote it: lmx_requests_total, lmx_..._bucket
    labels: Mapping[str, str]  # unescaped values; empty values dropped (= absent)
    value: float


def _raw_labels(section: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(section):
        match = _RAW_LABEL.match(section, pos)
        if match is None or match.group(1) in labels:
            return None
        labels[match.group(1)] = match.group(2)
        pos = match.end()
    return labels


def _raw_reading(line: str) -> tuple[str, dict[str, str]] | None:
    """Name and literal label values, read the way LMX writes them (no escapes)."""
    match = _RAW_SAMPLE.fullmatch(line)
    labels = None if match is None else _raw_labels(match.group("labels"))
    if match is None or labels is None:
        return None
    pairs = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
    return f"{match.group('name')}{{{pairs}}} {match.group('value')}", labels


def _labels(section: str | None) -> dict[str, str]:
    """Label values of a validated line, unescaped; empty ones kept (the caller decides)."""
    if not section:
        return {}
    return {
        intern(name): intern(
            _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(0)], quoted[1:-1])
            if "\\" in quoted
            else quoted[1:-1]
        )
        for name, quoted in _LABEL_PAIR.findall(section)
    }


def _sample(match: re.Match[str]) -> RelaySample:
    """A validated line's sample; an empty label value means absent, as in Prometheus."""
    labels = {k: v for k, v in _labels(match.group("labels")).items() if v}
    return RelaySample(intern(match.group("name")), labels, float(match.group("value")))


def _needs_escaping(labels: Mapping[str, str]) -> bool:
    return any('"' in v or "\\" in v for v in labels.values())


def clean_lines(text: str) -> tuple[list[str | RelaySample], int, int]:
    """Header lines and samples, LMX's raw lines re-escaped, the rest dropped.

    Whether a body is raw is decided once for the whole body: one line that is invalid
    as escaped text but valid as raw text proves this LMX does not escape, so its other
    values are literal too (`a\\\\b` is two backslashes, not one). A body with no such
    line is read as proper escaped text, as a fixed LMX would send it.
    """
    lines = [line.strip() for line in text.split("\n")]
    valid = [_VALID_SAMPLE.fullmatch(line) for line in lines]
    raw_body = any(
        ok is None
        and not line.startswith("#")
        and (reading := _raw_reading(line)) is not None
        and _needs_escaping(reading[1])
        for line, ok in zip(lines, valid, strict=True)
    )
    # only a raw body needs every line's raw reading (a healthy LMX's never does)
    raw = [None if not raw_body or line.startswith("#") else _raw_reading(line) for line in lines]
    kept: list[str | RelaySample] = []
    repaired = dropped = 0
    for line, ok, reading in zip(lines, valid, raw, strict=True):
        if not line:
            continue
        if line.startswith("#"):
            if _HEADER.fullmatch(line) is not None:  # other comments carry nothing
                kept.append(line)
        elif raw_body and reading is not None and _needs_escaping(reading[1]):
            fixed = _VALID_SAMPLE.fullmatch(reading[0])
            if fixed is not None and _labels(fixed.group("labels")) == reading[1]:
                kept.append(_sample(fixed))
                repaired += 1
            else:
                dropped += 1
        elif ok is not None:
            kept.append(_sample(ok))
        else:
            dropped += 1
    return kept, repaired, dropped


def unescape_help(text: str) -> str:
    """`# HELP` text escapes only backslash and newline; `\\"` stays as written."""
    return _UNESCAPE.sub(_help_escape, text)


def _help_escape(match: re.Match[str]) -> str:
    text = match.group(0)
    return text if text == '\\"' else _UNESCAPED[text]
