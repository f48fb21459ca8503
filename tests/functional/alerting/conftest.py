"""alerting's handler (Function URL and timer events) against the real stack, and a tenant."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.functions import FunctionCaller
from tests.support.http import HttpResult

WEBHOOK_SECRET = "whsec_" + "Y2FuYXJ5LXNlY3JldC1mb3ItdGVzdHMtMTIzNDU2Nzg5MA=="


@pytest.fixture
def env(function_env: dict[str, str]) -> dict[str, str]:
    return function_env


@pytest.fixture
def alerting(env: dict[str, str]) -> Callable[..., HttpResult]:
    return FunctionCaller("alerting")


@pytest.fixture
def tenant(env: dict[str, str]) -> dict[str, str]:
    from hybrid.auth.store import create_api_key
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    with database(env["DATABASE_URL"]).transaction() as tx:
        created = create_tenant(tx, "Acme")
        _a, admin = create_api_key(
            tx, tenant_id=created.id, name="a", scopes=("admin", "status:read")
        )
        _r, reader = create_api_key(tx, tenant_id=created.id, name="r", scopes=("status:read",))
    return {"id": created.id, "admin": admin.token, "reader": reader.token}


class _Receiver(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers.items()), body))  # type: ignore[attr-defined]
        self.send_response(self.server.answer)  # type: ignore[attr-defined]
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    server.answer = 204  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def channel(alerting, tenant, receiver, monkeypatch) -> dict[str, Any]:
    from hybrid.config import clear_settings_cache

    monkeypatch.setenv("ALERTS_ALLOW_PRIVATE_TARGETS", "true")
    clear_settings_cache()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    created = alerting(
        "POST",
        "/api/v1/alerts/channels",
        token=tenant["admin"],
        body={
            "type": "webhook",
            "name": "ops",
            "config": {"url": url, "secret": WEBHOOK_SECRET},
            "min_severity": "warning",
        },
    )
    assert created.status == 201, created.body
    return created.json
