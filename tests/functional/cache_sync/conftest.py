"""cache-sync's handler with Function URL and timer events, against the real embedded
PostgreSQL and Redis, and a real connector (the connector's own tunnel server and query
service, in process) over a customer database of fake people."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_emulator.stack._process import free_port
from tests.support.functions import ENCRYPTION_KEY, FunctionCaller, relay_caller
from tests.support.http import HttpResult

QUERY = "/api/v1/hybrid/query"
CACHE = "/api/v1/hybrid/query/cache"
PEOPLE_SQL = "SELECT id, name, phone, city FROM people WHERE id <= $1 ORDER BY id"


@pytest.fixture(scope="module")
def customer(endpoints: Any) -> Iterator[Any]:
    """The customer's database: `people` with phones, ID numbers, emails and names."""
    from tests.functional.connector.test_postgres_source import CustomerDatabase
    from tests.support.connector import create_people

    db = CustomerDatabase.create(endpoints.database_url)
    try:
        create_people(db)
        yield db
    finally:
        db.drop()


@pytest.fixture
def start_connector(customer: Any, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start a tunnel connector (the connector's real server and query service) for `secret`
    on `port`; stopped after the test."""
    from connector.config import parse_config
    from connector.service import QueryService
    from connector.tunnel import serve
    from tests.support.connector import connector_config

    running: list[tuple[Any, Any]] = []

    def start(secret: str, port: int, **extra: Any) -> Any:
        raw = connector_config(
            customer=customer,
            data_dir=tmp_path / f"connector-{len(running)}",
            secret=secret,
            port=port,
            **extra,
        )
        config = parse_config(raw, {})
        service = QueryService(config)
        service.startup_self_test()
        server = serve(config, service)
        running.append((server, service))
        return server

    yield start
    for server, service in running:
        server.stop()
        service.close()


@pytest.fixture
def cache_env(function_env: dict[str, str]) -> dict[str, str]:
    return function_env


Call = Callable[..., HttpResult]


@pytest.fixture
def cache(cache_env: dict[str, str]) -> FunctionCaller:
    return FunctionCaller("cache_sync")


@pytest.fixture
def world(cache_env: dict[str, str], start_connector: Callable[..., Any]) -> dict[str, Any]:
    """Tenant "acme" with a query key, an admin key and a status-only key, a tunnel connector
    (running) and a relay connector; tenant "other" with its own tunnel connector to the same
    database."""
    from hybrid.auth.store import create_api_key
    from hybrid.connectors.registry import Source, create_connector
    from hybrid.crypto import SecretBox
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    box = SecretBox(ENCRYPTION_KEY)
    port, other_port = free_port(), free_port()
    with database(cache_env["DATABASE_URL"]).transaction() as tx:
        acme = create_tenant(tx, f"Acme {uuid.uuid4().hex[:6]}")
        other = create_tenant(tx, f"Other {uuid.uuid4().hex[:6]}")
        keys = {
            name: create_api_key(tx, tenant_id=acme.id, name=name, scopes=scopes)[1].token
            for name, scopes in (
                ("query", ("query:read",)),
                ("admin", ("admin",)),
                ("status", ("status:read",)),
            )
        }
        other_key = create_api_key(tx, tenant_id=other.id, name="q", scopes=("query:read",))[1]
        tunnel, secret = create_connector(
            tx,
            box,
            tenant_id=acme.id,
            name="dc",
            transport="tunnel",
            endpoint=f"http://127.0.0.1:{port}",
            sources=[Source("erp", "postgresql")],
        )
        relay, relay_secret = create_connector(
            tx,
            box,
            tenant_id=acme.id,
            name="edge",
            transport="relay",
            endpoint=None,
            sources=[Source("erp", "postgresql")],
        )
        other_tunnel, other_secret = create_connector(
            tx,
            box,
            tenant_id=other.id,
            name="dc",
            transport="tunnel",
            endpoint=f"http://127.0.0.1:{other_port}",
            sources=[Source("erp", "postgresql")],
        )
    server = start_connector(secret, port)
    return {
        "tenant_id": acme.id,
        "other_tenant_id": other.id,
        "keys": keys,
        "other_key": other_key.token,
        "tunnel": tunnel.id,
        "secret": secret,
        "port": port,
        "server": server,
        "relay": relay.id,
        "relay_secret": relay_secret,
        "other_tunnel": other_tunnel.id,
        "other_secret": other_secret,
        "other_port": other_port,
    }


def ask(
    cache: Call,
    world: dict[str, Any],
    *,
    limit: int = 20,
    max_age: int = 300,
    sql: str = PEOPLE_SQL,
    connector: str | None = None,
    token: str | None = None,
    **extra: Any,
) -> HttpResult:
    body = {
        "connector_id": connector or world["tunnel"],
        "source": "erp",
        "sql": sql,
        "params": [limit],
        "max_age": max_age,
        **extra,
    }
    return cache("POST", QUERY, token=token or world["keys"]["query"], body=body)


def queries_run(server: Any) -> int:
    """How many queries the connector has run (its own counter)."""
    return int(server.service.stats.snapshot()["queries"])


def redis_keys(cache_env: dict[str, str]) -> list[bytes]:
    from hybrid.cache import redis_client

    return sorted(redis_client(cache_env["REDIS_URL"]).scan_iter(match="hybrid:qc:*"))


@pytest.fixture
def relay(cache_env: dict[str, str]) -> Callable[..., HttpResult]:
    """connector-relay's handler, called as a relay connector would (signed requests)."""
    return relay_caller()


def use_policy(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> Any:
    """Run cache-sync with these policy knobs changed."""
    import dataclasses

    from hybrid.hotcache.app import CacheServices

    policy = dataclasses.replace(CacheServices.policy, **changes)
    monkeypatch.setattr(CacheServices, "policy", policy)
    return policy


def entry(cache_env: dict[str, str], tenant_id: str, fp: str) -> dict[bytes, bytes]:
    from hybrid.cache import redis_client

    return dict(redis_client(cache_env["REDIS_URL"]).hgetall(f"hybrid:qc:{{{tenant_id}}}:e:{fp}"))
