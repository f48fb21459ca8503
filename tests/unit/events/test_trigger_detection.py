from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import hybrid.events
from hybrid.events import (
    CosObjectEvent,
    EventError,
    HttpEvent,
    HttpEventKind,
    InvocationContext,
    MalformedEventError,
    QueueMessage,
    TimerEvent,
    detect_trigger,
    parse_cos_event,
    parse_http_event,
    parse_queue_event,
    parse_timer_event,
)

FIXTURES = Path(__file__).parents[2] / "events"
LAYER_ROOT = Path(hybrid.events.__file__).parents[2]


def load(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return raw


@pytest.mark.parametrize(
    ("fixture", "trigger"),
    [
        ("function_url.json", "http"),
        ("function_url_doc.json", "http"),
        ("api_gateway.json", "http"),
        ("api_gateway_backend.json", "http"),
        ("api_gateway_quirks.json", "http"),
        ("cloudbase_http.json", "http"),
        ("timer.json", "timer"),
        ("tdmq_eventbridge.json", "queue"),
        ("cmq_topic.json", "queue"),
        ("cmq_topic_real.json", "queue"),
        ("cos.json", "cos"),
        ("cos_real.json", "cos"),
        ("context.json", "unknown"),
    ],
)
def test_every_fixture_is_classified_as_its_trigger(fixture: str, trigger: str) -> None:
    assert detect_trigger(load(fixture)) == trigger


def test_every_fixture_file_is_covered_by_the_classification_test() -> None:
    names = {path.name for path in FIXTURES.glob("*.json")}

    assert names >= {
        "function_url.json",
        "function_url_doc.json",
        "api_gateway.json",
        "api_gateway_backend.json",
        "api_gateway_quirks.json",
        "cloudbase_http.json",
        "timer.json",
        "tdmq_eventbridge.json",
        "cmq_topic.json",
        "cmq_topic_real.json",
        "cos.json",
        "cos_real.json",
        "context.json",
    }


@pytest.mark.parametrize(
    "raw",
    [None, 1, "x", [], {}, {"Records": []}, {"Records": [1]}, {"Type": None}, {"data": {}}],
)
def test_unrecognised_input_is_unknown(raw: object) -> None:
    assert detect_trigger(raw) == "unknown"


def test_direct_invoke_payload_is_unknown() -> None:
    assert detect_trigger({"tenant": "t1", "action": "sync"}) == "unknown"


def test_malformed_event_error_is_an_event_error() -> None:
    assert issubclass(MalformedEventError, EventError)
    assert issubclass(EventError, Exception)


def records() -> list[object]:
    return [
        parse_http_event(load("api_gateway.json")),
        parse_timer_event(load("timer.json")),
        parse_queue_event(load("tdmq_eventbridge.json"))[0],
        parse_cos_event(load("cos_real.json"))[0],
        InvocationContext.from_raw(load("context.json")),
    ]


@pytest.mark.parametrize("record", records(), ids=lambda r: type(r).__name__)
def test_records_survive_pickle_and_deepcopy_unchanged(record: object) -> None:
    assert pickle.loads(pickle.dumps(record)) == record  # noqa: S301 - our own bytes
    assert copy.deepcopy(record) == record
    assert copy.copy(record) == record


@pytest.mark.parametrize("record", records(), ids=lambda r: type(r).__name__)
def test_records_are_frozen(record: object) -> None:
    with pytest.raises(AttributeError, match="frozen"):
        record.anything = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="frozen"):
        del record.anything  # type: ignore[attr-defined]


def test_records_compare_by_value_and_hash_when_their_fields_do() -> None:
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    a = QueueMessage("cmq", "1", "b", "t", ("x",), when, None)
    b = QueueMessage("cmq", "1", "b", "t", ("x",), when, None)

    assert a == b
    assert len({a, b, TimerEvent("n", when), TimerEvent("n", when)}) == 2
    assert a != TimerEvent("n", when)
    assert CosObjectEvent("e", "1", "b", "r", "k") != CosObjectEvent("e", "1", "b", "r", "k2")
    assert HttpEvent(HttpEventKind.FUNCTION_URL, "GET") == HttpEvent(
        HttpEventKind.FUNCTION_URL, "get"
    )


def test_repr_names_the_fields() -> None:
    text = repr(TimerEvent("EveryDay", datetime(2024, 1, 1, tzinfo=timezone.utc), "m"))

    assert text.startswith("TimerEvent(trigger_name='EveryDay', time=datetime.datetime(2024")
    assert "message='m'" in text


def test_importing_the_package_loads_no_heavy_stdlib_modules() -> None:
    # A proxy for cold-start import time that does not depend on how busy the machine is.
    heavy = ["typing", "dataclasses", "inspect", "json", "re", "uuid", "base64"]
    code = (
        f"import sys; sys.path.insert(0, {str(LAYER_ROOT)!r}); import hybrid.events; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )

    result = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
