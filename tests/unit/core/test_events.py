"""event_from_sse: SSE name + data text in, typed LMX event or a counted EventError out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opta_exporter.core.events import (
    ERROR_REASONS,
    MAX_EVENT_CHARS,
    EventError,
    LmxEvent,
    event_from_sse,
)

MODEL = "mlx-community/Qwen3-8B-4bit"

ACCEPTED: list[tuple[str, str, str, str, dict[str, Any]]] = [
    # id, SSE name, data text, expected kind, expected data
    (
        "named model_loaded",
        "model_loaded",
        f'{{"model_id": "{MODEL}", "format": "mlx", "memory_gb": 4.62, "duration_sec": 2.41}}',
        "model_loaded",
        {"model_id": MODEL, "format": "mlx", "memory_gb": 4.62, "duration_sec": 2.41},
    ),
    (
        "named heartbeat",
        "heartbeat",
        '{"timestamp": 1718000000.5}',
        "heartbeat",
        {"timestamp": 1718000000.5},
    ),
    ("named empty object", "model_ttl_evicted", "{}", "model_ttl_evicted", {}),
    (
        "unknown named type passes through",
        "agent_run_started",
        '{"agent": "planner"}',
        "agent_run_started",
        {"agent": "planner"},
    ),
    (
        "never-sent request_completed passes through as it is",
        "request_completed",
        '{"model_id": "m", "latency_sec": 0.5}',
        "request_completed",
        {"model_id": "m", "latency_sec": 0.5},
    ),
    (
        "a named event that looks like an old envelope stays as it is",
        "model_loaded",
        '{"type": "status", "data": {}}',
        "model_loaded",
        {"type": "status", "data": {}},
    ),
    (
        "whitespace around the JSON",
        "heartbeat",
        '  {"timestamp": 1}  ',
        "heartbeat",
        {"timestamp": 1},
    ),
    # An unnamed event (SSE type `message`) is no LMX event: its object is taken as it is,
    # with no {type, data} unwrapping.
    (
        "unnamed object is a message event",
        "message",
        '{"model_id": "m"}',
        "message",
        {"model_id": "m"},
    ),
    (
        "unnamed old-dialect envelope is not unwrapped",
        "message",
        '{"type": "throughput", "data": {"tokensPerSecond": 41.5}}',
        "message",
        {"type": "throughput", "data": {"tokensPerSecond": 41.5}},
    ),
    ("unnamed empty object", "message", "{}", "message", {}),
    (
        "non-ASCII escaped (Python json.dumps)",
        "model_loaded",
        '{"model_id": "caf\\u00e9-\\ud83e\\udd99"}',
        "model_loaded",
        {"model_id": "café-🦙"},
    ),
    (
        "non-ASCII raw UTF-8",
        "model_loaded",
        '{"model_id": "café-🦙"}',
        "model_loaded",
        {"model_id": "café-🦙"},
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "kind", "data"),
    [pytest.param(*case[1:], id=case[0]) for case in ACCEPTED],
)
def test_accepted(name: str, text: str, kind: str, data: dict[str, Any]) -> None:
    assert event_from_sse(name, text) == LmxEvent(kind, data)


def test_an_event_has_only_a_kind_and_data() -> None:
    """No dialect flag is left: every event is its SSE name and its object."""
    assert LmxEvent._fields == ("kind", "data")


def test_escaped_and_raw_utf8_give_the_same_event() -> None:
    escaped = json.dumps({"model_id": "/models/é 🦙.gguf"})
    raw = json.dumps({"model_id": "/models/é 🦙.gguf"}, ensure_ascii=False)
    assert escaped != raw
    assert event_from_sse("model_loaded", escaped) == event_from_sse("model_loaded", raw)


REFUSED: list[tuple[str, str, str, str]] = [
    # id, SSE name, data text, reason
    ("empty data", "model_loaded", "", "malformed_json"),
    ("truncated", "model_loaded", '{"model_id": "m"', "malformed_json"),
    ("single quotes", "model_loaded", "{'model_id': 'm'}", "malformed_json"),
    ("bare word", "heartbeat", "ping", "malformed_json"),
    ("trailing garbage", "heartbeat", '{"timestamp": 1} x', "malformed_json"),
    ("two objects", "heartbeat", '{"a": 1}{"b": 2}', "malformed_json"),
    ("unnamed malformed", "message", '{"type": "status", "data": {', "malformed_json"),
    ("list", "model_loaded", '[{"model_id": "m"}]', "not_an_object"),
    ("empty list", "model_loaded", "[]", "not_an_object"),
    ("integer", "heartbeat", "42", "not_an_object"),
    ("float", "heartbeat", "1718000000.5", "not_an_object"),
    ("NaN literal", "heartbeat", "NaN", "not_an_object"),
    ("string", "heartbeat", '"hello"', "not_an_object"),
    ("null", "heartbeat", "null", "not_an_object"),
    ("true", "heartbeat", "true", "not_an_object"),
    ("unnamed list", "message", "[]", "not_an_object"),
    ("unnamed null", "message", "null", "not_an_object"),
]


@pytest.mark.parametrize(
    ("name", "text", "reason"), [pytest.param(*case[1:], id=case[0]) for case in REFUSED]
)
def test_refused(name: str, text: str, reason: str) -> None:
    with pytest.raises(EventError) as info:
        event_from_sse(name, text)
    assert info.value.reason == reason
    assert str(info.value).startswith(f"{reason}: ")


def test_error_reasons_are_the_contract_set() -> None:
    assert set(ERROR_REASONS) == {
        "malformed_json",
        "not_an_object",
        "bad_field",
        "oversize",
        "bad_id",
    }


def padded_object(length: int) -> str:
    """A valid JSON object of exactly `length` characters."""
    skeleton = '{"model_id": ""}'
    text = '{"model_id": "' + "x" * (length - len(skeleton)) + '"}'
    assert len(text) == length
    return text


def test_largest_event_is_accepted() -> None:
    event = event_from_sse("model_loaded", padded_object(MAX_EVENT_CHARS))
    assert event.kind == "model_loaded"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("model_loaded", padded_object(MAX_EVENT_CHARS + 1)),
        ("model_loaded", "x" * (MAX_EVENT_CHARS + 1)),  # size is judged before parsing
        ("message", padded_object(MAX_EVENT_CHARS + 1)),
    ],
)
def test_oversize(name: str, text: str) -> None:
    with pytest.raises(EventError) as info:
        event_from_sse(name, text)
    assert info.value.reason == "oversize"
    assert len(str(info.value)) < 200  # the message never carries the megabyte


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 100_000 + "1" + "}" * 100_000,
    ],
    ids=["deep-list", "deep-object"],
)
def test_deep_nesting_is_bad_input_not_a_crash(text: str) -> None:
    """Under the size limit, yet deeper than Python's recursion limit: json.loads raises
    RecursionError, which must become a counted EventError like any other bad input."""
    assert len(text) <= MAX_EVENT_CHARS
    with pytest.raises(EventError) as info:
        event_from_sse("heartbeat", text)
    assert info.value.reason in {"malformed_json", "not_an_object"}


def test_event_error_keeps_reason_and_detail() -> None:
    with pytest.raises(EventError) as info:
        event_from_sse("download_failed", "[1]")
    assert info.value.reason == "not_an_object"
    assert "download_failed" in info.value.detail


@pytest.mark.parametrize(
    ("data", "model"),
    [
        (b'{"model_id": "caf\\u00e9"}', "café"),
        ('{"model_id": "café 🦙"}'.encode(), "café 🦙"),
    ],
)
def test_bytes_data_is_decoded(data: bytes, model: str) -> None:
    assert event_from_sse("model_loaded", data) == LmxEvent("model_loaded", {"model_id": model})


@pytest.mark.parametrize("data", [b'{"model_id": "caf\xe9"}', b"\xff\xfe\x00{"])
def test_undecodable_bytes_are_malformed(data: bytes) -> None:
    with pytest.raises(EventError) as info:
        event_from_sse("model_loaded", data)
    assert info.value.reason == "malformed_json"


@pytest.mark.parametrize("text", ["{broken", "[]", "x" * (MAX_EVENT_CHARS + 1)])
def test_error_detail_stays_short_for_a_huge_event_name(text: str) -> None:
    """The name comes from the wire too: a hostile one must not flood the logs."""
    with pytest.raises(EventError) as info:
        event_from_sse("n" * 100_000, text)
    assert len(str(info.value)) < 400
