"""A tick that changes a link's state wakes alerting through the queue after its commit; when
the publish fails, the event is still in the outbox for alerting's sweep."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.tencent_api import FakeTencentApi

SECRET_ID = "AKIDprobequeue0000000001"
SECRET_KEY = "probe-queue-secret-key-0123456789abcdef"
SESSION_TOKEN = "probe-queue-session-token-0123456789"
REGION = "ap-guangzhou"


def _silence(probe_env, connector_id: str) -> None:
    from hybrid.db import database

    with database(probe_env["DATABASE_URL"]).transaction() as tx:
        tx.execute(
            "UPDATE connectors SET last_seen_at = :at WHERE id = :id",
            id=connector_id,
            at=datetime.now(timezone.utc) - timedelta(minutes=10),
        )


def _pending_alert_events(probe_env) -> int:
    from hybrid.db import database

    with database(probe_env["DATABASE_URL"]).transaction() as tx:
        return int(
            tx.scalar("SELECT count(*) FROM outbox WHERE topic = 'alerts' AND done_at IS NULL")
        )


@pytest.fixture
def tdmq(probe_env, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTencentApi]:
    from hybrid.config import clear_settings_cache

    fake = FakeTencentApi(
        service="tdmq",
        action="SendMessages",
        version="2020-02-17",
        region=REGION,
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        session_token=SESSION_TOKEN,
        responder=lambda params: (200, {"MessageId": "26365:1:0", "ErrorMsg": ""}),
    )
    for name, value in {
        "TENCENTCLOUD_SECRETID": SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
        "TENCENTCLOUD_SESSIONTOKEN": SESSION_TOKEN,
        "TENCENTCLOUD_REGION": REGION,
        "QUEUE_BACKEND": "tdmq",
        "TDMQ_CLUSTER_ID": "pulsar-hybrid01",
        "TDMQ_ENVIRONMENT": "alerts-ns",
        "TDMQ_ENDPOINT": fake.endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    clear_settings_cache()
    yield fake
    fake.close()


def _go_down(status, links, probe_env) -> None:
    _silence(probe_env, links["relay"])
    for _ in range(3):
        status.tick()


def test_a_transition_publishes_one_wake_up_to_the_local_queue(status, links, probe_env, endpoints):
    from hybrid.cache import redis_client
    from hybrid.queue.local import topic_key

    redis = redis_client(endpoints.redis_url)
    status.tick()  # first verdicts (unknown -> connected or down) may already be transitions
    redis.delete(topic_key("alerts"))
    _go_down(status, links, probe_env)
    messages = [json.loads(m) for m in redis.lrange(topic_key("alerts"), 0, -1)]
    assert len(messages) == 1
    body = json.loads(messages[0]["body"])
    assert body["kind"] == "alert_events"
    assert body["producer"] == "status-probe"
    assert body["events"] >= 1
    status.tick()  # still down: nothing new, no wake-up
    assert redis.llen(topic_key("alerts")) == 1


def test_the_wake_up_goes_to_tdmq_when_configured(status, links, probe_env, tdmq):
    status.tick()
    tdmq.requests.clear()
    _go_down(status, links, probe_env)
    assert tdmq.problems == []
    [request] = tdmq.requests
    assert request["params"]["Topic"] == "persistent://pulsar-hybrid01/alerts-ns/alerts"
    assert json.loads(request["params"]["Payload"])["kind"] == "alert_events"


def test_a_failed_publish_leaves_the_event_for_the_sweep(status, links, probe_env, tdmq):
    from tests.support.functions import load_function
    from tests.support.http import context

    tdmq.responder = lambda params: (
        200,
        {"Error": {"Code": "InternalError", "Message": "pulsar broker unavailable"}},
    )
    status.tick()
    _go_down(status, links, probe_env)  # the tick itself succeeds
    assert tdmq.requests, "a publish was attempted"
    assert _pending_alert_events(probe_env) >= 1
    timer = json.loads(
        (__import__("pathlib").Path(__file__).parents[2] / "events" / "timer.json").read_text()
    )
    summary = load_function("alerting").main_handler(timer, context("alerting"))
    assert summary["recorded"] >= 1
    assert _pending_alert_events(probe_env) == 0
