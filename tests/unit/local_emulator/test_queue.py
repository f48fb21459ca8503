"""The local queue over a real Redis: TDMQ and CMQ event shapes, retries, dead letters, recovery."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from local_emulator.descriptor import ProjectSpec
from local_emulator.invoker import AsyncInvoker, Invoker
from local_emulator.queue import (
    QueueConsumer,
    dead_key,
    processing_key,
    publish,
    queue_key,
)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture
def start_consumer(
    project: ProjectSpec, invoker: Invoker, client: redis.Redis
) -> Iterator[Callable[[], QueueConsumer]]:
    runner = AsyncInvoker(invoker, retry_delays=(0.05, 0.05))
    consumers: list[QueueConsumer] = []

    def start() -> QueueConsumer:
        consumer = QueueConsumer(project, runner, client, block_s=0.2)
        consumer.start()
        consumers.append(consumer)
        return consumer

    yield start
    for consumer in consumers:
        consumer.stop()
    runner.close()


def test_keys_follow_the_layer_wire_format() -> None:
    assert queue_key("alerts") == "hybrid:localq:{alerts}"
    assert processing_key("alerts") == "hybrid:localq:processing:{alerts}"
    assert dead_key("alerts") == "hybrid:localq:dead:{alerts}"


def test_eventbridge_subscriber_receives_the_tdmq_event(
    client: redis.Redis,
    start_consumer: Callable[[], QueueConsumer],
    out_dir: Path,
    read_records: Callable[[Path], list[Any]],
    wait_for: Callable[..., Any],
) -> None:
    consumer = start_consumer()
    assert consumer.topics == ["jobs", "legacy-jobs"]
    message_id = publish(client, "jobs", '{"job": 1}', ["urgent", "ops"])

    (event,) = wait_for(lambda: read_records(out_dir / "consumer.jsonl"))
    assert event["specversion"] == "1.0"
    assert event["type"] == "connector:tdmq"
    assert event["source"] == "tdmq.cloud.tencent"
    assert event["subject"] == (
        "qcs::tdmq:ap-guangzhou:uin/0:topicName/local/default/jobs/consumer-jobs"
    )
    assert re.fullmatch(r"\d{13}", event["time"])
    assert event["region"] == "ap-guangzhou"
    assert event["datacontenttype"] == "application/json;charset=utf-8"
    data = event["data"]
    assert data["topic"] == "persistent://1250000000/default/jobs"
    assert data["tags"] == "urgent,ops"
    assert data["TopicType"] == 0
    assert data["subscriptionName"] == "consumer-jobs"
    assert re.fullmatch(r"\d{13}", data["toTimestamp"])
    assert data["partitions"] == "0"
    assert data["msgId"] == message_id
    assert data["msgBody"] == '{"job": 1}'
    wait_for(lambda: client.llen(processing_key("jobs")) == 0)
    assert client.llen(queue_key("jobs")) == 0


def test_cmq_subscriber_receives_the_legacy_cmq_event(
    client: redis.Redis,
    start_consumer: Callable[[], QueueConsumer],
    out_dir: Path,
    read_records: Callable[[Path], list[Any]],
    wait_for: Callable[..., Any],
) -> None:
    start_consumer()
    message_id = publish(client, "legacy-jobs", "hello", ["t1", "t2"])

    (event,) = wait_for(lambda: read_records(out_dir / "consumer.jsonl"))
    (record,) = event["Records"]
    cmq = record["CMQ"]
    assert cmq["type"] == "topic"
    assert cmq["topicOwner"] == 1250000000
    assert cmq["topicName"] == "legacy-jobs"
    assert cmq["subscriptionName"] == "consumer-legacy-jobs"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", cmq["publishTime"])
    assert cmq["msgId"] == message_id
    assert cmq["msgBody"] == "hello"
    assert cmq["msgTag"] == "t1,t2"
    assert cmq["requestId"]


def test_failing_message_is_retried_twice_then_dead_lettered(
    client: redis.Redis,
    start_consumer: Callable[[], QueueConsumer],
    out_dir: Path,
    read_records: Callable[[Path], list[Any]],
    wait_for: Callable[..., Any],
) -> None:
    start_consumer()
    message_id = publish(client, "jobs", "fail", ["x"])

    raw = wait_for(lambda: client.lrange(dead_key("jobs"), 0, -1))
    dead = json.loads(raw[0])
    assert dead["id"] == message_id
    assert dead["body"] == "fail"
    assert dead["tags"] == ["x"]
    assert dead["published_at"]
    assert dead["attempts"] == 3
    assert dead["function"] == "consumer"
    assert dead["error"]["statusCode"] == 430
    assert len(read_records(out_dir / "consumer.jsonl")) == 3
    wait_for(lambda: client.llen(processing_key("jobs")) == 0)


def test_messages_left_in_processing_are_delivered_after_a_restart(
    client: redis.Redis,
    start_consumer: Callable[[], QueueConsumer],
    out_dir: Path,
    read_records: Callable[[Path], list[Any]],
    wait_for: Callable[..., Any],
) -> None:
    # as if the emulator died after moving these to processing: oldest at the right
    for n in (1, 2):
        message = {
            "id": f"m{n}",
            "body": f"b{n}",
            "tags": [],
            "published_at": "2025-01-01T00:00:00Z",
        }
        client.lpush(processing_key("jobs"), json.dumps(message))
    start_consumer()
    events = wait_for(lambda: (r := read_records(out_dir / "consumer.jsonl")) and len(r) == 2 and r)
    assert sorted(e["data"]["msgId"] for e in events) == ["m1", "m2"]
    wait_for(lambda: client.llen(processing_key("jobs")) == 0)


def test_unparseable_messages_go_straight_to_the_dead_letter_list(
    client: redis.Redis,
    start_consumer: Callable[[], QueueConsumer],
    wait_for: Callable[..., Any],
) -> None:
    start_consumer()
    client.lpush(queue_key("jobs"), b"not json")
    raw = wait_for(lambda: client.lrange(dead_key("jobs"), 0, -1))
    assert json.loads(raw[0])["raw"] == "not json"
    assert client.llen(processing_key("jobs")) == 0
