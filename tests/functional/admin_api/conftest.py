from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.functions import ENCRYPTION_KEY, load_function
from tests.support.http import HttpResult, context, function_url_event, read_result

ROOT = Path(__file__).resolve().parents[3]
OPERATOR_KEY = "hop_operator-canary-5b1f0e9d7c3a"


def load_handler_module() -> Any:
    return load_function("admin_api")


@pytest.fixture
def admin_env(clean_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from hybrid.config import clear_settings_cache

    env = {
        "APP_ENV": "test",
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": clean_db,
        "OPERATOR_KEY": OPERATOR_KEY,
        "SECRETS_ENCRYPTION_KEY": ENCRYPTION_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clear_settings_cache()
    yield env
    clear_settings_cache()


Call = Callable[..., HttpResult]


@pytest.fixture
def admin(admin_env: dict[str, str]) -> Call:
    """Call admin-api's real handler with a Function URL event."""
    module = load_handler_module()

    def call(method: str, path: str, *, token: str | None = None, **kwargs: Any) -> HttpResult:
        event = function_url_event(method, path, token=token, **kwargs)
        return read_result(module.main_handler(event, context()))

    return call


@pytest.fixture
def operator_token() -> str:
    return OPERATOR_KEY


@pytest.fixture
def tenant_factory(admin: Call) -> Callable[[str], dict[str, Any]]:
    """Create a tenant and an admin-scoped key for it; returns ids and the key."""

    def make(name: str, scopes: list[str] | None = None) -> dict[str, Any]:
        tenant = admin("POST", "/api/v1/admin/tenants", token=OPERATOR_KEY, body={"name": name})
        assert tenant.status == 201, tenant.json
        key = admin(
            "POST",
            f"/api/v1/admin/tenants/{tenant.json['id']}/api-keys",
            token=OPERATOR_KEY,
            body={"name": f"{name} admin", "scopes": scopes or ["admin"]},
        )
        assert key.status == 201, key.json
        return {"tenant_id": tenant.json["id"], "key": key.json["key"], "key_id": key.json["id"]}

    return make
