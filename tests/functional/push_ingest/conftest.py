from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.functions import ENCRYPTION_KEY, load_function
from tests.support.http import HttpResult, context, function_url_event, read_result

ROOT = Path(__file__).resolve().parents[3]


def load_handler_module() -> Any:
    return load_function("push_ingest")


@pytest.fixture
def push_env(clean_db: str, endpoints, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from hybrid.config import clear_settings_cache

    env = {
        "APP_ENV": "test",
        "LOG_LEVEL": "INFO",
        **endpoints.env(),
        "DATABASE_URL": clean_db,
        "SECRETS_ENCRYPTION_KEY": ENCRYPTION_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clear_settings_cache()
    _flush_redis(endpoints.redis_url)
    yield env
    clear_settings_cache()


def _flush_redis(url: str) -> None:
    from hybrid.cache import redis_client

    redis_client(url).flushdb()


@pytest.fixture
def handler(push_env: dict[str, str]) -> Any:
    return load_handler_module()


Call = Callable[..., HttpResult]


@pytest.fixture
def push(handler: Any) -> Call:
    """Call push-ingest's real handler with a Function URL event."""

    def call(method: str, path: str, *, token: str | None = None, **kwargs: Any) -> HttpResult:
        event = function_url_event(method, path, token=token, **kwargs)
        return read_result(handler.main_handler(event, context("push-ingest")))

    return call


@pytest.fixture
def tenant(push_env: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """A tenant with a key of the given scopes (created directly in the database)."""
    from hybrid.auth.store import create_api_key
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    def make(name: str = "Acme", scopes: tuple[str, ...] = ("ingest:write", "status:read")) -> dict:
        with database(push_env["DATABASE_URL"]).transaction() as tx:
            created = create_tenant(tx, name)
            _key, token = create_api_key(tx, tenant_id=created.id, name="k", scopes=scopes)
        return {"tenant_id": created.id, "key": token.token}

    return make


def records(
    count: int, *, start: int = 0, when: str = "2026-11-20T08:00:00Z", prefix: str = "cust"
) -> list[dict[str, Any]]:
    return [
        {
            "key": f"{prefix}-{i}",
            "op": "upsert",
            "updated_at": when,
            "data": {"name": f"客户 {i}", "tier": i % 3},
        }
        for i in range(start, start + count)
    ]
