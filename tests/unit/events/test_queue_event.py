from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hybrid.events import MalformedEventError, QueueMessage, is_queue_event, parse_queue_event

FIXTURES = Path(__file__).parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return raw


# --- TDMQ through EventBridge ----------------------------------------------------------------


def test_tdmq_fixture_gives_one_message_with_short_topic_and_ms_epoch_time() -> None:
    [message] = parse_queue_event(load("tdmq_eventbridge.json"))

    assert message == QueueMessage(
        source="tdmq",
        message_id="123345346",
        body="Hello from TDMQ!",
        topic="topic-1",
        tags=("testtopic",),
        published_at=datetime(2021, 3, 11, 2, 42, 39, 146000, tzinfo=timezone.utc),
        subscription="xxxxxx",
    )


def test_tdmq_spec_1_0_with_subject_rfc3339_time_and_string_topic_type() -> None:
    raw = load("tdmq_eventbridge.json")
    raw["specversion"] = "1.0"
    raw["subject"] = raw.pop("subjuect")
    raw["time"] = "2021-03-11T02:42:39.146Z"
    raw["data"]["TopicType"] = "0"
    raw["data"]["tags"] = "a, b,,c"

    [message] = parse_queue_event(raw)

    assert message.published_at == datetime(2021, 3, 11, 2, 42, 39, 146000, tzinfo=timezone.utc)
    assert message.tags == ("a", "b", "c")


def test_tdmq_without_topic_and_subscription_falls_back_to_the_subject() -> None:
    raw = load("tdmq_eventbridge.json")
    raw["subjuect"] = "qcs::tdmq:ap-guangzhou:uin/1:topicName/pulsar-1/env/orders/sub-a"
    del raw["data"]["topic"], raw["data"]["subscriptionName"]

    [message] = parse_queue_event(raw)

    assert message.topic == "orders"
    assert message.subscription == "sub-a"


def test_tdmq_json_body_is_parsed_on_request() -> None:
    raw = load("tdmq_eventbridge.json")
    raw["data"]["msgBody"] = '{"tenant": "t1", "ids": [1, 2]}'

    [message] = parse_queue_event(raw)

    assert message.json_body() == {"tenant": "t1", "ids": [1, 2]}


def test_json_body_of_non_json_raises_malformed_event() -> None:
    [message] = parse_queue_event(load("tdmq_eventbridge.json"))

    with pytest.raises(MalformedEventError, match="not JSON"):
        message.json_body()


def test_json_body_too_deeply_nested_raises_malformed_event() -> None:
    message = QueueMessage("cmq", "1", "[" * 100_000 + "]" * 100_000, "t")

    with pytest.raises(MalformedEventError):
        message.json_body()


# --- legacy CMQ topic ------------------------------------------------------------------------


def test_cmq_doc_event_splits_string_tags_and_reads_millisecond_time() -> None:
    [message] = parse_queue_event(load("cmq_topic.json"))

    assert message == QueueMessage(
        source="cmq",
        message_id="123345346",
        body="Hello from CMQ!",
        topic="testtopic",
        tags=("tag1", "tag2"),
        published_at=datetime(1970, 1, 1, tzinfo=timezone.utc),
        subscription="xxxxxx",
    )


def test_cmq_real_capture_strips_spaces_around_tags_and_accepts_int_owner() -> None:
    raw = load("cmq_topic_real.json")
    assert raw["Records"][0]["CMQ"]["topicOwner"] == 123456

    [message] = parse_queue_event(raw)

    assert message.tags == ("aaaa", "bbbbb", "cccc")
    assert message.message_id == "13510798882111490"
    assert message.topic == "ritchiechen-cmq-test"
    assert message.subscription == "ritchiechen-cmq-test"
    assert message.published_at == datetime(2019, 8, 16, 10, 48, 49, tzinfo=timezone.utc)


def test_cmq_tags_as_a_list_and_several_records_keep_their_order() -> None:
    raw = load("cmq_topic.json")
    first = raw["Records"][0]["CMQ"]
    first["msgTag"] = ["tag1", "tag2"]
    second = first | {"msgId": "2", "msgTag": []}
    raw["Records"].append({"CMQ": second})

    messages = parse_queue_event(raw)

    assert [m.message_id for m in messages] == ["123345346", "2"]
    assert messages[0].tags == ("tag1", "tag2")
    assert messages[1].tags == ()


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "Records",
        {"Type": "Timer"},
        {"Records": "CMQ"},
        {"Records": [{"cos": {}}]},
        {"Records": [{"CMQ": {"msgBody": "no id"}}]},
        {"Records": [{"CMQ": {"msgId": "1", "msgTag": 5}}]},
        {"Records": [{"CMQ": {"msgId": "1", "msgTag": ["a", 1]}}]},
        {"Records": [{"CMQ": {"msgId": "1", "publishTime": "noon"}}]},
        {"Records": [{"CMQ": {"msgId": True}}]},
        {"specversion": "0", "type": "connector:tdmq", "data": "body"},
        {"specversion": "0", "type": "connector:tdmq", "data": {"msgBody": "x"}},
        {"specversion": "0", "type": "connector:tdmq", "data": {"msgId": "1", "msgBody": 3}},
        {"specversion": "0", "type": "connector:tdmq", "time": "9" * 30, "data": {"msgId": "1"}},
    ],
)
def test_wrong_shapes_raise_malformed_event(raw: object) -> None:
    with pytest.raises(MalformedEventError):
        parse_queue_event(raw)


def test_is_queue_event_recognises_both_shapes_only() -> None:
    assert is_queue_event(load("tdmq_eventbridge.json"))
    assert is_queue_event(load("cmq_topic.json"))
    assert not is_queue_event(load("cos.json"))
    assert not is_queue_event({"specversion": "1.0", "type": "connector:ckafka", "data": {}})
    assert not is_queue_event({"Records": []})
