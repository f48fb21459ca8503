from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hybrid.events import MalformedEventError, TimerEvent, is_timer_event, parse_timer_event

FIXTURES = Path(__file__).parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return raw


def test_timer_fixture_gives_trigger_name_utc_time_and_message() -> None:
    event = parse_timer_event(load("timer.json"))

    assert event == TimerEvent(
        trigger_name="EveryDay",
        time=datetime(2019, 2, 21, 11, 49, tzinfo=timezone.utc),
        message="user define msg body",
    )
    assert event.time.utcoffset() == timedelta(0)


@pytest.mark.parametrize("kind", ["Timer", "timer"])
def test_type_is_accepted_in_either_case(kind: str) -> None:
    raw = load("timer.json") | {"Type": kind}

    assert is_timer_event(raw)
    assert parse_timer_event(raw).trigger_name == "EveryDay"


@pytest.mark.parametrize("message", ["missing", None, ""])
def test_missing_message_reads_as_empty_string(message: object) -> None:
    raw = load("timer.json")
    if message == "missing":
        del raw["Message"]
    else:
        raw["Message"] = message

    assert parse_timer_event(raw).message == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-02-21T11:49:00Z", datetime(2019, 2, 21, 11, 49, tzinfo=timezone.utc)),
        ("2019-02-21T11:49:00.5Z", datetime(2019, 2, 21, 11, 49, 0, 500000, tzinfo=timezone.utc)),
        (
            "2019-02-21T11:49:00.123456789Z",
            datetime(2019, 2, 21, 11, 49, 0, 123456, tzinfo=timezone.utc),
        ),
        ("2019-02-21T19:49:00+08:00", datetime(2019, 2, 21, 11, 49, tzinfo=timezone.utc)),
        ("2019-02-21 11:49:00", datetime(2019, 2, 21, 11, 49, tzinfo=timezone.utc)),
    ],
)
def test_time_variants_become_aware_utc(text: str, expected: datetime) -> None:
    event = parse_timer_event(load("timer.json") | {"Time": text})

    assert event.time == expected
    assert event.time.tzinfo == timezone.utc


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {"Type": "cos"},
        {"Type": "Timer", "TriggerName": "t"},
        {"Type": "Timer", "TriggerName": "t", "Time": "yesterday"},
        {"Type": "Timer", "TriggerName": "t", "Time": "2019-13-01T00:00:00Z"},
        {"Type": "Timer", "TriggerName": "t", "Time": "2019-02-21T11:49:00+25:00"},
        {"Type": "Timer", "TriggerName": "t", "Time": 1550749740},
        {"Type": "Timer", "Time": "2019-02-21T11:49:00Z"},
        {"Type": "Timer", "TriggerName": "t", "Time": "2019-02-21T11:49:00Z", "Message": {}},
    ],
)
def test_wrong_shapes_raise_malformed_event(raw: object) -> None:
    with pytest.raises(MalformedEventError):
        parse_timer_event(raw)


def test_is_timer_event_rejects_other_events() -> None:
    assert not is_timer_event({"Records": []})
    assert not is_timer_event("Timer")
    assert not is_timer_event({"Type": 1})
