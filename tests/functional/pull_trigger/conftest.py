"""pull-trigger and connector-relay handlers, called with Function URL and timer events,
against the real embedded PostgreSQL and Redis; the test plays the relay connector."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.functions import FunctionCaller, load_function
from tests.support.http import HttpResult, context, function_url_event, read_result

ENCRYPTION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


@pytest.fixture
def pull_env(function_env: dict[str, str]) -> dict[str, str]:
    return function_env


Call = Callable[..., HttpResult]


@pytest.fixture
def pull(pull_env: dict[str, str]) -> FunctionCaller:
    return FunctionCaller("pull_trigger")


@pytest.fixture
def tick(pull: Call) -> Callable[[], dict[str, Any]]:
    """One minute-timer invocation of pull-trigger."""
    from pathlib import Path

    event = json.loads((Path(__file__).resolve().parents[2] / "events" / "timer.json").read_text())

    def run() -> dict[str, Any]:
        ctx = context("pull-trigger") | {"time_limit_in_ms": 60_000}
        return pull.handler.main_handler(event, ctx)  # type: ignore[attr-defined]

    return run


@pytest.fixture
def relay(pull_env: dict[str, str]) -> Callable[..., HttpResult]:
    """connector-relay's handler, called as a connector would: signed over the request line."""
    from hybrid.signing import sign_request

    handler = load_function("connector_relay")

    def call(
        method: str,
        path: str,
        secret: str,
        *,
        body: bytes = b"",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        sign_as: str | None = None,
    ) -> HttpResult:
        target = path + (
            "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items())) if query else ""
        )
        signed = sign_request(
            sign_as or secret,
            method,
            target,
            body,
            msg_id=f"msg_{uuid.uuid4().hex}",
            timestamp=int(time.time()),
        )
        event = function_url_event(
            method, path, raw_body=body, query=query, headers={**signed, **(headers or {})}
        )
        return read_result(handler.main_handler(event, context("connector-relay")))

    return call


@pytest.fixture
def world(pull_env: dict[str, str]) -> dict[str, Any]:
    """A tenant with a jobs key, a relay connector with source "erp" (postgresql) and a
    tunnel connector pointing at a closed port."""
    from hybrid.auth.store import create_api_key
    from hybrid.connectors.registry import Source, create_connector
    from hybrid.crypto import SecretBox
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    box = SecretBox(ENCRYPTION_KEY)
    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        tenant = create_tenant(tx, "Acme")
        _key, token = create_api_key(
            tx, tenant_id=tenant.id, name="k", scopes=("jobs:write", "status:read")
        )
        _rkey, read_token = create_api_key(
            tx, tenant_id=tenant.id, name="r", scopes=("status:read",)
        )
        relay_connector, relay_secret = create_connector(
            tx,
            box,
            tenant_id=tenant.id,
            name="edge",
            transport="relay",
            endpoint=None,
            sources=[Source("erp", "postgresql")],
        )
        tunnel_connector, tunnel_secret = create_connector(
            tx,
            box,
            tenant_id=tenant.id,
            name="dc",
            transport="tunnel",
            endpoint="http://127.0.0.1:9",
            sources=[Source("erp", "mysql")],
        )
    return {
        "tenant_id": tenant.id,
        "key": token.token,
        "read_key": read_token.token,
        "relay": relay_connector.id,
        "relay_secret": relay_secret,
        "tunnel": tunnel_connector.id,
        "tunnel_secret": tunnel_secret,
    }
