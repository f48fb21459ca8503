"""TdmqQueue against a loopback server playing the TDMQ API: it checks the action, version, body
and the TC3-HMAC-SHA256 signature (computed here as the TencentCloud API "Signature v3" page
describes it) and answers in the documented SendMessages response shape."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from hybrid.queue import QueueError, QueueUnavailableError, TdmqQueue
from tests.support.tencent_api import FakeTencentApi

SECRET_ID = "AKIDqueuerole00000000001"
SECRET_KEY = "queue-role-secret-key-abcdef0123456789"
SESSION_TOKEN = "queue-session-token-0123456789abcdef"
REGION = "ap-guangzhou"


class FakeTdmq(FakeTencentApi):
    def __init__(self) -> None:
        super().__init__(
            service="tdmq",
            action="SendMessages",
            version="2020-02-17",
            region=REGION,
            secret_id=SECRET_ID,
            secret_key=SECRET_KEY,
            session_token=SESSION_TOKEN,
            responder=lambda params: (
                200,
                {"MessageId": f"26365:{len(self.requests)}:0", "ErrorMsg": ""},
            ),
        )


@pytest.fixture
def tdmq(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTdmq]:
    fake = FakeTdmq()
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", SECRET_KEY)
    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", SESSION_TOKEN)
    monkeypatch.setenv("TENCENTCLOUD_REGION", REGION)
    yield fake
    fake.close()


def _queue(fake: FakeTdmq) -> TdmqQueue:
    return TdmqQueue(cluster_id="pulsar-abc123", environment="alerts-ns", endpoint=fake.endpoint)


def test_publish_sends_a_signed_send_messages_call_and_returns_the_message_id(
    tdmq: FakeTdmq,
) -> None:
    message_id = _queue(tdmq).publish("alerts", '{"alert": "db down"}')

    assert tdmq.problems == []
    assert message_id == "26365:1:0"
    assert tdmq.requests[0]["params"] == {
        "Topic": "persistent://pulsar-abc123/alerts-ns/alerts",
        "Payload": '{"alert": "db down"}',
        "SendTimeout": 3,
    }


def test_a_full_topic_path_is_sent_unchanged(tdmq: FakeTdmq) -> None:
    queue = _queue(tdmq)
    queue.publish("persistent://pulsar-other/ns/topic-1", "a")
    queue.publish("pulsar-other/ns/topic-2", "b")
    topics = [r["params"]["Topic"] for r in tdmq.requests]
    assert topics == [
        "persistent://pulsar-other/ns/topic-1",
        "persistent://pulsar-other/ns/topic-2",
    ]


def test_tags_and_key_are_not_sent_because_the_api_has_no_field_for_them(tdmq: FakeTdmq) -> None:
    _queue(tdmq).publish("alerts", "body", tags=["critical"], key="tenant-7")
    assert set(tdmq.requests[0]["params"]) == {"Topic", "Payload", "SendTimeout"}


def test_api_error_response_is_a_queue_error_with_code_and_request_id(tdmq: FakeTdmq) -> None:
    tdmq.responder = lambda params: (
        200,
        {"Error": {"Code": "ResourceNotFound.Topic", "Message": "topic not found"}},
    )
    with pytest.raises(QueueError) as caught:
        _queue(tdmq).publish("missing-topic", "body")

    error = caught.value
    assert not isinstance(error, QueueUnavailableError)
    assert "ResourceNotFound.Topic" in str(error)
    assert "tdmq-req-1" in str(error)
    assert "missing-topic" in str(error)
    for secret in (SECRET_KEY, SESSION_TOKEN):
        assert secret not in str(error)


def test_error_message_in_a_success_shape_is_a_queue_error(tdmq: FakeTdmq) -> None:
    tdmq.responder = lambda params: (200, {"MessageId": "", "ErrorMsg": "producer is closed"})
    with pytest.raises(QueueError, match="producer is closed"):
        _queue(tdmq).publish("alerts", "body")


def test_internal_error_is_queue_unavailable(tdmq: FakeTdmq) -> None:
    tdmq.responder = lambda params: (
        200,
        {"Error": {"Code": "InternalError", "Message": "internal error"}},
    )
    with pytest.raises(QueueUnavailableError, match="InternalError"):
        _queue(tdmq).publish("alerts", "body")


def test_server_side_http_failure_is_queue_unavailable(tdmq: FakeTdmq) -> None:
    tdmq.responder = lambda params: (502, {})
    with pytest.raises(QueueUnavailableError):
        _queue(tdmq).publish("alerts", "body")


def test_unreachable_endpoint_is_queue_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", SECRET_KEY)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    queue = TdmqQueue(cluster_id="c", environment="e", endpoint=f"http://127.0.0.1:{port}")

    started = time.monotonic()
    with pytest.raises(QueueUnavailableError) as caught:
        queue.publish("alerts", "body")
    assert time.monotonic() - started < 5
    assert SECRET_KEY not in str(caught.value)


def test_request_signed_with_another_key_is_refused_by_the_fake(
    tdmq: FakeTdmq, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "some-other-secret-key")
    with pytest.raises(QueueError, match=r"AuthFailure\.SignatureFailure"):
        _queue(tdmq).publish("alerts", "body")
    assert tdmq.problems == ["signature"]


def test_api_client_is_reused_until_the_role_credentials_change(
    tdmq: FakeTdmq, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = _queue(tdmq)
    first = queue._sdk_client()
    assert queue._sdk_client() is first

    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", "rotated-token-0000000")
    assert queue._sdk_client() is not first


def test_empty_body_and_incomplete_target_are_rejected() -> None:
    with pytest.raises(QueueError):
        TdmqQueue(cluster_id="", environment="e")
    with pytest.raises(QueueError):
        TdmqQueue(cluster_id="c", environment="e").publish("alerts", "")


def test_no_credential_anywhere_is_a_queue_error_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside SCF with no role and no keys the SDK's provider chain ends in a bare OSError."""
    for name in (
        "TENCENTCLOUD_SECRETID",
        "TENCENTCLOUD_SECRETKEY",
        "TENCENTCLOUD_SESSIONTOKEN",
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
        "TKE_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    queue = TdmqQueue(cluster_id="pulsar-abc123", environment="ns", endpoint="http://127.0.0.1:9")
    with pytest.raises(QueueError, match="credential"):
        queue.publish("alerts", "body")
