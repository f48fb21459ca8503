"""Pulls end to end: a customer PostgreSQL full of fake PII, a real connector process, the
emulator (pull-trigger, connector-relay over HTTP). The cloud must end up holding exactly the
source rows, masked, whatever gets killed or cut along the way."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from local_emulator.connector_process import ConnectorProcess, connector_config
from local_emulator.customer_db import MASKING, CustomerDatabase
from local_emulator.emulator import Emulator
from local_emulator.local_env import local_secrets
from tests.support.fault_proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    data_dir = tmp_path_factory.mktemp("pull-emulator")
    with Emulator(ROOT / "serverless.yml", data_dir, retry_delays=(0.2, 0.2)) as running:
        yield running


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


@pytest.fixture
def cloud(emulator: Emulator) -> Cloud:
    """A fresh tenant per test: each test's records are its own."""
    return Cloud(emulator)


@pytest.fixture
def customer(emulator: Emulator, request: pytest.FixtureRequest) -> Iterator[CustomerDatabase]:
    admin_url = emulator.endpoints.env()["DATABASE_URL"]
    name = "cust_" + request.node.name[5:30].lower().replace("[", "_").replace("]", "")
    db = CustomerDatabase.create(admin_url, name)
    try:
        yield db
    finally:
        db.drop()


def _source(customer: CustomerDatabase) -> dict[str, Any]:
    return {
        "erp": {
            "engine": "postgresql",
            "url": customer.reader_url,
            "schema": "public",
            "allowed_tables": ["customers"],
            "masking": {"customers": MASKING},
        }
    }


@pytest.fixture
def relay_connector(
    cloud: Cloud, customer: CustomerDatabase, tmp_path: Path, request: pytest.FixtureRequest
):
    """A relay connector process talking to the emulator through a fault proxy."""
    created = cloud.connector(f"edge-{request.node.name[-20:]}-{time.time_ns()}", "relay")
    port = int(cloud.url.rsplit(":", 1)[1])
    proxy = FaultProxy("127.0.0.1", port)
    config = connector_config(
        connector_id=created["id"],
        secret=created["secret"],
        transport="relay",
        data_dir=tmp_path / "connector",
        sources=_source(customer),
        cloud_url=proxy.url,
        poll_wait=2,
        retry_base_s=0.1,
        retry_cap_s=0.5,
    )
    process = ConnectorProcess(config)
    process.start(ready=lambda: cloud.last_seen(created["id"]) is not None)
    try:
        yield created, process, proxy
    finally:
        process.stop()
        proxy.close()


def _expected(customer: CustomerDatabase) -> set[str]:
    return {str(row[0]) for row in customer.run("SELECT id FROM customers")}


def _assert_exact(cloud: Cloud, customer: CustomerDatabase) -> dict[str, dict[str, Any]]:
    records = cloud.records()
    assert set(records) == _expected(customer)
    raw_phones = {row[0] for row in customer.run("SELECT phone FROM customers")}
    for record in records.values():
        assert record["data"]["phone"] not in raw_phones
        assert "****" in record["data"]["phone"]
    return records


def test_a_relay_pull_brings_exactly_the_source_rows_masked(cloud, customer, relay_connector):
    connector, _process, _proxy = relay_connector
    customer.fill(3000, faker=True)
    job = cloud.job(connector["id"], f"relay-{time.time_ns()}", page_rows=500)
    execution = cloud.wait(job["id"], cloud.run(job["id"]))
    assert execution["status"] == "success", execution
    assert execution["records_succeeded"] == 3000
    records = _assert_exact(cloud, customer)
    sample = records["7"]["data"]
    assert set(sample) == {
        "id",
        "name",
        "phone",
        "id_card",
        "bank_card",
        "email",
        "city",
        "note",
        "amount",
        "updated_at",
    }
    assert "*" in sample["id_card"]
    assert "*" in sample["bank_card"]
    assert "*" in sample["name"]


def test_killing_the_connector_mid_pull_loses_and_duplicates_nothing(
    cloud, customer, relay_connector
):
    connector, process, _proxy = relay_connector
    customer.fill(20_000)
    job = cloud.job(connector["id"], f"kill-{time.time_ns()}", page_rows=1000)
    execution_id = cloud.run(job["id"])
    rng = random.Random(4)
    stored_at_kills = []
    for _ in range(3):
        time.sleep(rng.uniform(0.2, 0.8))
        process.kill()
        stored_at_kills.append(len(cloud.records()))
        process.start(ready=lambda: True)
    assert any(0 < stored < 20_000 for stored in stored_at_kills), stored_at_kills
    execution = cloud.wait(job["id"], execution_id, timeout=180)
    assert execution["status"] == "success", execution
    records = _assert_exact(cloud, customer)
    assert len(records) == 20_000
    # Each row was written once: a re-sent chunk was recognised, not applied again.
    assert {record["version"] for record in records.values()} == {1}


def test_rows_inserted_during_a_pull_with_the_same_cursor_value_are_not_skipped(
    cloud, customer, relay_connector
):
    connector, _process, _proxy = relay_connector
    stamp = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    customer.fill(5000, updated_at=stamp, spread_s=0)  # every row has the same cursor value
    job = cloud.job(connector["id"], f"same-{time.time_ns()}", page_rows=500)
    execution_id = cloud.run(job["id"])
    # While the pull runs, rows with the same stamp arrive, with keys below and above.
    customer.run(
        "INSERT INTO customers (id, name, updated_at) SELECT g, 'late' || g, :s "
        "FROM generate_series(-20, -1) AS g",
        s=stamp,
    )
    customer.run(
        "INSERT INTO customers (id, name, updated_at) SELECT g, 'late' || g, :s "
        "FROM generate_series(9001, 9020) AS g",
        s=stamp,
    )
    assert cloud.wait(job["id"], execution_id)["status"] == "success"
    # The next run starts inside the overlap window and picks up whatever the first missed.
    assert cloud.wait(job["id"], cloud.run(job["id"]))["status"] == "success"
    assert set(cloud.records()) == _expected(customer)


def test_the_cloud_unreachable_spools_then_drains_without_loss(cloud, customer, relay_connector):
    connector, process, proxy = relay_connector
    customer.fill(10_000)
    job = cloud.job(connector["id"], f"spool-{time.time_ns()}", page_rows=1000)
    execution_id = cloud.run(job["id"])
    deadline = time.monotonic() + 30
    while not cloud.records() and time.monotonic() < deadline:
        time.sleep(0.05)
    proxy.down()
    spooled = 0
    for _ in range(50):
        spooled = max(spooled, len(list((process.data_dir / "spool").glob("*"))))
        time.sleep(0.1)
    assert spooled > 0, "nothing was spooled while the cloud was unreachable"
    stalled = len(cloud.records())
    assert stalled < 10_000
    proxy.up()
    execution = cloud.wait(job["id"], execution_id, timeout=120)
    assert execution["status"] == "success", execution
    records = _assert_exact(cloud, customer)
    assert {record["version"] for record in records.values()} == {1}
