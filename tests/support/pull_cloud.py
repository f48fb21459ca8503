"""The cloud side of the pull end-to-end tests: a tenant's view of the emulator (admin, jobs,
executions) plus direct reads of what the cloud stored, and the connector's source config."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from local_emulator.customer_db import CustomerDatabase
from local_emulator.emulator import Emulator
from local_emulator.local_env import local_secrets


class Cloud:
    """The tenant's view of the emulator, plus direct reads of what the cloud stored."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.url = emulator.url
        operator = {"Authorization": f"Bearer {local_secrets(emulator.data_dir)['OPERATOR_KEY']}"}
        tenant = self._ok(
            requests.post(
                f"{self.url}/api/v1/admin/tenants",
                json={"name": f"E2E {time.time_ns()}"},
                headers=operator,
                timeout=30,
            )
        )
        key = self._ok(
            requests.post(
                f"{self.url}/api/v1/admin/tenants/{tenant['id']}/api-keys",
                json={"name": "ops", "scopes": ["admin", "jobs:write", "status:read"]},
                headers=operator,
                timeout=30,
            )
        )
        self.tenant_id = tenant["id"]
        self.auth = {"Authorization": f"Bearer {key['key']}"}
        self.database_url = emulator.endpoints.env()["DATABASE_URL"]

    @staticmethod
    def _ok(response: requests.Response) -> Any:
        assert response.status_code < 300, response.text
        return response.json()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self._ok(
            requests.request(method, f"{self.url}{path}", json=body, headers=self.auth, timeout=60)
        )

    def connector(self, name: str, transport: str, endpoint: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "transport": transport,
            "sources": [{"name": "erp", "engine": "postgresql"}],
        }
        if endpoint:
            body["endpoint"] = endpoint
        return self.call("POST", "/api/v1/admin/connectors", body)

    def job(self, connector_id: str, name: str, **extra: Any) -> dict[str, Any]:
        return self.call(
            "POST",
            "/api/v1/sync/jobs",
            {
                "name": name,
                "connector_id": connector_id,
                "source": "erp",
                "table": "customers",
                "cursor_column": "updated_at",
                "key_columns": ["id"],
                **extra,
            },
        )

    def run(self, job_id: str, mode: str | None = None) -> str:
        body = {"mode": mode} if mode else None
        return str(self.call("POST", f"/api/v1/sync/jobs/{job_id}/run", body)["execution_id"])

    def execution(self, job_id: str, execution_id: str) -> dict[str, Any]:
        found = self.call("GET", f"/api/v1/sync/jobs/{job_id}/executions")
        return next(e for e in found if e["execution_id"] == execution_id)

    def wait(
        self,
        job_id: str,
        execution_id: str,
        timeout: float = 90,
        tick: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution = self.execution(job_id, execution_id)
            if execution["status"] != "running":
                return execution
            if tick is not None:
                tick()
            time.sleep(0.2)
        raise TimeoutError(f"execution {execution_id} still running: {execution}")

    def records(self) -> dict[str, dict[str, Any]]:
        from hybrid.db import database

        with database(self.database_url).transaction() as tx:
            rows = tx.rows(
                "SELECT key, data, version FROM records "
                "WHERE tenant_id = :t AND entity = 'customers'",
                t=self.tenant_id,
            )
        return {row["key"]: row for row in rows}

    def last_seen(self, connector_id: str) -> datetime | None:
        from hybrid.db import database

        with database(self.database_url).transaction() as tx:
            value: datetime | None = tx.scalar(
                "SELECT last_seen_at FROM connectors WHERE id = :c", c=connector_id
            )
        return value


def register_connector(
    cloud: Cloud,
    customer: CustomerDatabase,
    data_dir: Path,
    transport: str,
    *,
    listen: str | None = None,
    cloud_url: str | None = None,
    **extra: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A connector registered with the cloud (relay, or tunnel listening on `listen`) and the
    config of its process over `customer`'s database: (the created connector, the config)."""
    from local_emulator.connector_process import connector_config

    endpoint = f"http://{listen}" if transport == "tunnel" else None
    name = f"{'dc' if transport == 'tunnel' else 'edge'}-{time.time_ns()}"
    created = cloud.connector(name, transport, endpoint=endpoint)
    config = connector_config(
        connector_id=created["id"],
        secret=created["secret"],
        transport=transport,
        data_dir=data_dir,
        sources=customer.connector_sources(),
        cloud_url=(cloud_url or cloud.url) if transport == "relay" else None,
        listen=listen,
        **extra,
    )
    return created, config


def expected_keys(customer: CustomerDatabase) -> set[str]:
    return {str(row[0]) for row in customer.run("SELECT id FROM customers")}


def assert_exact(cloud: Cloud, customer: CustomerDatabase) -> dict[str, dict[str, Any]]:
    records = cloud.records()
    assert set(records) == expected_keys(customer)
    raw_phones = {row[0] for row in customer.run("SELECT phone FROM customers")}
    for record in records.values():
        assert record["data"]["phone"] not in raw_phones
        assert "****" in record["data"]["phone"]
    return records
