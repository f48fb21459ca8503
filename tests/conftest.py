"""Shared fixtures: one embedded stack (PostgreSQL, Redis, COS) per test session, migrated."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT / "layers" / "common", ROOT):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

# CI runs the same examples every time (a red CI must be reproducible); locally hypothesis
# explores new ones on every run.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

APP_TABLES = (
    "query_fingerprints",
    "alert_deliveries",
    "alert_groups",
    "alert_channels",
    "alerts",
    "silences",
    "probe_samples",
    "link_states",
    "relay_chunks",
    "relay_jobs",
    "sync_executions",
    "sync_jobs",
    "tokens",
    "token_pools",
    "outbox",
    "tenant_usage",
    "file_uploads",
    "webhook_messages",
    "idempotency_keys",
    "push_receipts",
    "data_conflicts",
    "records",
    "sources",
    "audit_log",
    "connector_sources",
    "connectors",
    "tenant_quotas",
    "api_keys",
    "tenants",
)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The embedded servers (or external ones named by DATABASE_URL/REDIS_URL/COS_*)."""
    from infra.migrate import upgrade
    from local_emulator.stack import resolve_stack

    data_dir = tmp_path_factory.mktemp("stack")
    endpoints, started = resolve_stack(data_dir, os.environ)
    try:
        upgrade(endpoints.database_url)
        yield started if started is not None else endpoints
    finally:
        if started is not None:
            started.stop()


@pytest.fixture(scope="session")
def endpoints(stack: object) -> object:
    return getattr(stack, "endpoints", stack)


@pytest.fixture
def function_env(
    clean_db: str, endpoints: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """A function's environment against the test stack (a clean database, Redis flushed),
    settings re-read; the values, for tests that need them."""
    from hybrid.cache import redis_client
    from hybrid.config import clear_settings_cache
    from tests.support.functions import ENCRYPTION_KEY

    values = {
        "APP_ENV": "test",
        "LOG_LEVEL": "INFO",
        **endpoints.env(),
        "DATABASE_URL": clean_db,
        "SECRETS_ENCRYPTION_KEY": ENCRYPTION_KEY,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    clear_settings_cache()
    redis_client(endpoints.redis_url).flushdb()
    yield values
    clear_settings_cache()


@pytest.fixture
def clean_db(endpoints: object) -> str:
    """An empty schema for one test; yields the DATABASE_URL."""
    from hybrid.db import database

    url: str = endpoints.database_url  # type: ignore[attr-defined]
    with database(url).transaction() as tx:
        tx.execute(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY CASCADE")
    return url


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real MariaDB server (installed by infra/scripts/install-mariadb.sh), the customer side."""
    from tests.support.mariadb import start_for_tests

    server = start_for_tests(tmp_path_factory)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def unused_tcp_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
