"""schemathesis against openapi.yaml, through the real handlers: generated requests (valid and
invalid) never get a 5xx, and every response is what the spec says it can be."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.support.wsgi import FunctionsApp

APP = FunctionsApp()
schema = schemathesis.openapi.from_wsgi("/openapi.yaml", APP)
ENCRYPTION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
OPERATOR_KEY = "hop_fuzz-operator-key-3f9a1c"
INTERNAL_API_KEY = "fuzz-internal-key-7c2e9b41d0"


@pytest.fixture(scope="module")
def credentials(endpoints) -> Iterator[dict[str, str]]:
    """Both functions configured against the test stack; a tenant key with every scope."""
    from hybrid.auth.store import create_api_key
    from hybrid.config import clear_settings_cache
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    env = {
        **endpoints.env(),
        "APP_ENV": "test",
        "LOG_LEVEL": "ERROR",
        "OPERATOR_KEY": OPERATOR_KEY,
        "INTERNAL_API_KEY": INTERNAL_API_KEY,
        "SECRETS_ENCRYPTION_KEY": ENCRYPTION_KEY,
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    clear_settings_cache()
    with database(endpoints.database_url).transaction() as tx:
        tenant = create_tenant(tx, f"fuzz-{os.getpid()}")
        _key, token = create_api_key(
            tx,
            tenant_id=tenant.id,
            name="fuzz",
            scopes=["admin", "ingest:write", "status:read", "jobs:write", "query:read"],
        )
    yield {"Authorization": f"Bearer {token.token}"}
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    clear_settings_cache()


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_no_generated_request_gets_a_server_error(case, credentials) -> None:
    headers = dict(credentials)
    if case.path.startswith("/api/v1/sync/push/webhook/"):
        headers = {}
    if case.path.startswith("/api/v1/tokens"):
        headers = {"X-Internal-API-Key": INTERNAL_API_KEY}
    response = case.call(headers=headers)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, response.text[:500]
