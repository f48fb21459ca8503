"""pull-trigger and connector-relay handlers, called with Function URL and timer events,
against the real embedded PostgreSQL and Redis; the test plays the relay connector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.functions import ENCRYPTION_KEY, FunctionCaller, relay_caller
from tests.support.http import HttpResult


@pytest.fixture
def pull_env(function_env: dict[str, str]) -> dict[str, str]:
    return function_env


Call = Callable[..., HttpResult]


@pytest.fixture
def pull(pull_env: dict[str, str]) -> FunctionCaller:
    return FunctionCaller("pull_trigger")


@pytest.fixture
def tick(pull: FunctionCaller) -> Callable[[], dict[str, Any]]:
    """One minute-timer invocation of pull-trigger."""
    return pull.tick  # type: ignore[no-any-return]


@pytest.fixture
def relay(pull_env: dict[str, str]) -> Callable[..., HttpResult]:
    """connector-relay's handler, called as a connector would: signed over the request line."""
    return relay_caller()


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
