"""Property tests: parsers raise EventError or nothing, whatever the input."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid.events import (
    EventError,
    HttpEventKind,
    InvocationContext,
    detect_trigger,
    is_cos_event,
    is_http_event,
    is_queue_event,
    is_timer_event,
    parse_cos_event,
    parse_http_event,
    parse_queue_event,
    parse_timer_event,
    render_http_response,
)

FIXTURES = Path(__file__).parents[2] / "events"
FIXTURE_NAMES = sorted(path.name for path in FIXTURES.glob("*.json"))
PARSERS: list[Callable[[object], object]] = [
    parse_http_event,
    parse_timer_event,
    parse_queue_event,
    parse_cos_event,
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _keys_of(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(key)
            _keys_of(item, found)
    elif isinstance(value, list):
        for item in value:
            _keys_of(item, found)
    return found


KNOWN_KEYS = sorted(set().union(*(_keys_of(load(name), set()) for name in FIXTURE_NAMES)))

# Strings that reach the deeper branches: times, epochs, base64 and platform markers.
tricky_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["Timer", "timer", "true", "True", "connector:tdmq", "cos:ObjectCreated:Put", "", " "]
    ),
    st.from_regex(
        r"\A-?\d{1,4}-\d{1,2}-\d{1,2}[T ]\d{2}:\d{2}:\d{2}(\.\d{0,9})?(Z|[+-]\d{2}:?\d{2})?\Z"
    ),
    st.from_regex(r"\A\d{1,40}\Z"),
    st.from_regex(r"\A[A-Za-z0-9+/=\s]{0,12}\Z"),
    st.from_regex(r"\A/\d{1,10}/[a-z]{1,5}/.{0,5}\Z"),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    tricky_text,
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=6))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(keys, json_values, max_size=8)


def assert_only_event_errors(raw: object) -> None:
    for parse in PARSERS:
        with contextlib.suppress(EventError):
            parse(raw)
    assert detect_trigger(raw) in {"http", "timer", "queue", "cos", "unknown"}
    for check in (is_http_event, is_timer_event, is_queue_event, is_cos_event):
        assert isinstance(check(raw), bool)
    assert InvocationContext.from_raw(raw).request_id


@FUZZ
@given(json_values)
def test_any_json_value_parses_or_raises_event_error(raw: object) -> None:
    assert_only_event_errors(raw)


@FUZZ
@given(json_objects)
def test_any_json_object_with_platform_keys_parses_or_raises_event_error(raw: object) -> None:
    assert_only_event_errors(raw)


def mutate(data: st.DataObject, value: Any) -> Any:
    """Drop keys, swap values for other types, or recurse, chosen per node by hypothesis."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            action = data.draw(st.sampled_from(["keep", "keep", "recurse", "drop", "replace"]))
            if action == "keep":
                out[key] = item
            elif action == "recurse":
                out[key] = mutate(data, item)
            elif action == "replace":
                out[key] = data.draw(json_values)
        return out
    if isinstance(value, list):
        return [mutate(data, item) for item in value]
    if data.draw(st.booleans()):
        return data.draw(json_values)
    return value


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_fixtures_parse_or_raise_event_error(fixture: str, data: st.DataObject) -> None:
    assert_only_event_errors(mutate(data, load(fixture)))


@FUZZ
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_any_rfc3339_time_reads_back_as_the_same_instant(naive: datetime, offset: int) -> None:
    moment = naive.replace(tzinfo=timezone(timedelta(minutes=offset)))
    event = {"Type": "Timer", "TriggerName": "t", "Time": moment.isoformat()}

    parsed = parse_timer_event(event).time

    assert parsed == moment
    assert parsed.tzinfo == timezone.utc


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["application/octet-stream", "image/png", ""]))
def test_binary_response_bodies_round_trip_through_base64(body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}

    out = render_http_response(HttpEventKind.FUNCTION_URL, 200, headers, body)

    assert out["isBase64Encoded"] is bool(body)
    assert (base64.b64decode(out["body"]) if body else b"") == body
    echoed = {"httpMethod": "GET", "body": out["body"], "isBase64Encoded": out["isBase64Encoded"]}
    assert parse_http_event(echoed).body == body


@FUZZ
@given(json_values, st.sampled_from(list(HttpEventKind)))
def test_json_response_bodies_stay_text(document: Any, kind: HttpEventKind) -> None:
    body = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")

    out = render_http_response(kind, 200, {"content-type": "application/json"}, body)

    try:
        expected = body.decode("utf-8")
    except UnicodeDecodeError:  # lone surrogates are not UTF-8: sent as base64 instead
        assert out["isBase64Encoded"] is True
        return
    assert out["isBase64Encoded"] is False
    assert out["body"] == expected


@FUZZ
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.one_of(st.text(max_size=10), st.lists(st.text(max_size=10), max_size=3)),
        max_size=5,
    )
)
def test_response_headers_come_back_exactly_including_lists(headers: dict[str, Any]) -> None:
    out = render_http_response(HttpEventKind.API_GATEWAY, 200, headers, b"")

    assert out["headers"] == headers
    json.dumps(out)
