"""alerting's handler (Function URL and timer events) against the real stack, and a tenant."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.functions import load_function
from tests.support.http import HttpResult, context, function_url_event, read_result

ENCRYPTION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
TIMER = json.loads((Path(__file__).resolve().parents[2] / "events" / "timer.json").read_text())


@pytest.fixture
def env(function_env: dict[str, str]) -> dict[str, str]:
    return function_env


@pytest.fixture
def alerting(env: dict[str, str]) -> Callable[..., HttpResult]:
    handler = load_function("alerting")

    def call(method: str, path: str, *, token: str | None = None, **kwargs: Any) -> HttpResult:
        event = function_url_event(method, path, token=token, **kwargs)
        return read_result(handler.main_handler(event, context("alerting")))

    call.sweep = lambda: handler.main_handler(TIMER, context("alerting"))  # type: ignore[attr-defined]
    return call


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
