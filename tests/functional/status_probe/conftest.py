"""status-probe's handler with Function URL and timer events, against the real stack."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.functions import ENCRYPTION_KEY, FunctionCaller


@pytest.fixture
def probe_env(function_env: dict[str, str]) -> dict[str, str]:
    return function_env


@pytest.fixture
def status(probe_env: dict[str, str]) -> FunctionCaller:
    return FunctionCaller("status_probe")


@pytest.fixture
def links(probe_env: dict[str, str]) -> dict[str, Any]:
    """A tenant with a status key, a relay connector (sources erp, crm) and a tunnel connector
    whose endpoint refuses connections."""
    from hybrid.auth.store import create_api_key
    from hybrid.connectors.registry import Source, create_connector
    from hybrid.crypto import SecretBox
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    box = SecretBox(ENCRYPTION_KEY)
    with database(probe_env["DATABASE_URL"]).transaction() as tx:
        tenant = create_tenant(tx, "Acme")
        _key, token = create_api_key(tx, tenant_id=tenant.id, name="k", scopes=("status:read",))
        relay, _ = create_connector(
            tx,
            box,
            tenant_id=tenant.id,
            name="edge",
            transport="relay",
            endpoint=None,
            sources=[Source("erp", "postgresql"), Source("crm", "mysql")],
        )
        tunnel, _ = create_connector(
            tx,
            box,
            tenant_id=tenant.id,
            name="dc",
            transport="tunnel",
            endpoint="http://127.0.0.1:9",
            sources=[Source("erp", "postgresql")],
        )
    return {"tenant_id": tenant.id, "key": token.token, "relay": relay.id, "tunnel": tunnel.id}
