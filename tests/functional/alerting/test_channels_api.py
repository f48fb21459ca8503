"""Notification channels over HTTP: created only when their adapter builds and their target
passes the SSRF guard, secrets sealed and never shown again, test-send to a real receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

WEBHOOK_SECRET = "whsec_" + "Y2FuYXJ5LXNlY3JldC1mb3ItdGVzdHMtMTIzNDU2Nzg5MA=="


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers.items()), body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def private_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    from hybrid.config import clear_settings_cache

    monkeypatch.setenv("ALERTS_ALLOW_PRIVATE_TARGETS", "true")
    clear_settings_cache()


def test_a_webhook_channel_is_stored_sealed_and_test_sends_a_signed_message(
    alerting, tenant, receiver, private_ok
):
    from standardwebhooks import Webhook

    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/alerts?token=abc"
    created = alerting(
        "POST",
        "/api/v1/alerts/channels",
        token=tenant["admin"],
        body={"type": "webhook", "name": "ops", "config": {"url": url, "secret": WEBHOOK_SECRET}},
    )
    assert created.status == 201, created.body
    assert WEBHOOK_SECRET not in created.body.decode()
    assert "token=abc" not in created.body.decode()
    assert created.json["config"] == {
        "url": f"http://127.0.0.1:{receiver.server_address[1]}/…",
        "secret": "***",
    }
    listed = alerting("GET", "/api/v1/alerts/channels", token=tenant["admin"])
    assert WEBHOOK_SECRET not in listed.body.decode()
    sent = alerting(
        "POST", f"/api/v1/alerts/channels/{created.json['id']}/test", token=tenant["admin"]
    )
    assert sent.status == 200
    assert sent.json["ok"] is True
    [(headers, body)] = receiver.received
    payload = Webhook(WEBHOOK_SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
    assert payload["data"]["title"].startswith("hybrid-sync test notification")
    assert payload["data"]["tenant_id"] == tenant["id"]


def test_private_targets_are_refused_unless_the_operator_allows_them(alerting, tenant, receiver):
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    refused = alerting(
        "POST",
        "/api/v1/alerts/channels",
        token=tenant["admin"],
        body={"type": "webhook", "name": "ops", "config": {"url": url, "secret": WEBHOOK_SECRET}},
    )
    assert refused.status == 422
    assert "config" in refused.json["detail"]
    metadata = alerting(
        "POST",
        "/api/v1/alerts/channels",
        token=tenant["admin"],
        body={
            "type": "webhook",
            "name": "meta",
            "config": {"url": "http://169.254.169.254/latest", "secret": WEBHOOK_SECRET},
        },
    )
    assert metadata.status == 422
    assert alerting("GET", "/api/v1/alerts/channels", token=tenant["admin"]).json["channels"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"type": "wecom", "name": "w", "config": {}},
        {"type": "pager", "name": "p", "config": {}},
        {
            "type": "webhook",
            "name": "h",
            "config": {"url": "ftp://example.com/x", "secret": WEBHOOK_SECRET},
        },
        {"type": "email", "name": "e", "config": {"host": "smtp.example.com"}},
    ],
)
def test_a_bad_channel_gets_a_422(alerting, tenant, body, private_ok):
    result = alerting("POST", "/api/v1/alerts/channels", token=tenant["admin"], body=body)
    assert result.status == 422, result.body
    assert result.content_type.startswith("application/problem+json")


def test_channels_are_the_tenants_own_and_need_admin(alerting, tenant, receiver, private_ok, env):
    from hybrid.auth.store import create_api_key
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    body = {"type": "webhook", "name": "ops", "config": {"url": url, "secret": WEBHOOK_SECRET}}
    assert (
        alerting("POST", "/api/v1/alerts/channels", token=tenant["reader"], body=body).status == 403
    )
    created = alerting("POST", "/api/v1/alerts/channels", token=tenant["admin"], body=body).json
    assert (
        alerting("POST", "/api/v1/alerts/channels", token=tenant["admin"], body=body).status == 409
    )
    with database(env["DATABASE_URL"]).transaction() as tx:
        other = create_tenant(tx, "Other")
        _k, token = create_api_key(tx, tenant_id=other.id, name="o", scopes=("admin",))
    for method, path in (
        ("GET", f"/api/v1/alerts/channels/{created['id']}"),
        ("POST", f"/api/v1/alerts/channels/{created['id']}/test"),
        ("DELETE", f"/api/v1/alerts/channels/{created['id']}"),
    ):
        assert alerting(method, path, token=token.token).status == 404
    assert receiver.received == []
    assert (
        alerting("DELETE", f"/api/v1/alerts/channels/{created['id']}", token=tenant["admin"]).status
        == 204
    )
    assert alerting("GET", "/api/v1/alerts/channels", token=tenant["admin"]).json["channels"] == []
    assert json.loads(json.dumps(created))["min_severity"] == "warning"
