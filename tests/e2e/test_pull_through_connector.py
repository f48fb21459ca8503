"""Pulls end to end: a customer PostgreSQL full of fake PII, a real connector process, the
emulator (pull-trigger, connector-relay over HTTP). The cloud must end up holding exactly the
source rows, masked, whatever gets killed or cut along the way."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from local_emulator.connector_process import ConnectorProcess, connector_config
from local_emulator.customer_db import CustomerDatabase
from local_emulator.emulator import Emulator
from tests.support.fault_proxy import FaultProxy
from tests.support.pull_cloud import Cloud, assert_exact, expected_keys

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    data_dir = tmp_path_factory.mktemp("pull-emulator")
    with Emulator(ROOT / "serverless.yml", data_dir, retry_delays=(0.2, 0.2)) as running:
        yield running


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
        sources=customer.connector_sources(),
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


def test_a_relay_pull_brings_exactly_the_source_rows_masked(cloud, customer, relay_connector):
    connector, _process, _proxy = relay_connector
    customer.fill(3000, faker=True)
    job = cloud.job(connector["id"], f"relay-{time.time_ns()}", page_rows=500)
    execution = cloud.wait(job["id"], cloud.run(job["id"]))
    assert execution["status"] == "success", execution
    assert execution["records_succeeded"] == 3000
    records = assert_exact(cloud, customer)
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
    records = assert_exact(cloud, customer)
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
    assert set(cloud.records()) == expected_keys(customer)


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
    records = assert_exact(cloud, customer)
    assert {record["version"] for record in records.values()} == {1}
