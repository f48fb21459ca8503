"""cache-sync end to end: the emulator over HTTP, a real connector process in front of a
customer PostgreSQL full of Faker zh_CN people. Only masked rows ever reach Redis; when the
connector stops, cached results are served STALE and uncached ones answer 503."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local_emulator.connector_process import ConnectorProcess
from local_emulator.customer_db import CustomerDatabase
from local_emulator.emulator import Emulator
from tests.support.pii_scan import RawPii
from tests.support.pull_cloud import Cloud, register_connector

ROOT = Path(__file__).resolve().parents[2]
QUERY = "/api/v1/hybrid/query"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    data_dir = tmp_path_factory.mktemp("cache-emulator")
    with Emulator(ROOT / "serverless.yml", data_dir, retry_delays=(0.2, 0.2)) as running:
        yield running


def _query(cloud: Cloud, connector_id: str, sql: str, params: list[Any], **extra: Any) -> Any:
    body = {"connector_id": connector_id, "source": "erp", "sql": sql, "params": params, **extra}
    return requests.post(f"{cloud.url}{QUERY}", json=body, headers=cloud.auth, timeout=60)


def _redis_texts(emulator: Emulator) -> list[str]:
    """Every cache key and value in Redis, compressed values decompressed."""
    import redis
    import zstandard

    client = redis.Redis.from_url(emulator.endpoints.env()["REDIS_URL"])
    texts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        values: list[bytes] = []
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                if field == b"b":
                    value = zstandard.ZstdDecompressor().decompress(value)
                values += [field, value]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind in ("set", "zset"):
            values = list(client.smembers(key)) if kind == "set" else client.zrange(key, 0, -1)
        texts.append(key.decode("utf-8", "replace"))
        texts += [v.decode("utf-8", "replace") for v in values]
    return texts


def test_only_masked_rows_reach_redis_after_faker_queries_through_a_relay_connector(
    emulator: Emulator, cloud: Cloud, customer: CustomerDatabase, tmp_path: Path
) -> None:
    customer.fill(2000, faker=True, seed=20261124)
    created, config = register_connector(
        cloud, customer, tmp_path / "connector", "relay", poll_wait=2
    )
    connector = ConnectorProcess(config).start(
        ready=lambda: cloud.last_seen(created["id"]) is not None
    )
    queries = [
        ("SELECT * FROM customers WHERE id <= $1 ORDER BY id", [2000]),
        ("SELECT name, phone, email, note FROM customers WHERE id > $1 ORDER BY id", [1000]),
        ("SELECT city, count(*) AS n FROM customers WHERE id <= $1 GROUP BY city", [2000]),
        ("SELECT id, id_card, bank_card FROM customers WHERE id BETWEEN $1 AND $2", [5, 900]),
    ]
    with connector:
        for sql, params in queries:
            answer = _query(cloud, created["id"], sql, params)
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Cache"] == "MISS"
            assert answer.json()["row_count"] > 0
            again = _query(cloud, created["id"], sql, params)
            assert again.headers["X-Cache"] == "HIT"
    assert connector.process is not None
    assert connector.process.poll() is not None

    raw = RawPii(customer)
    assert len(raw.numbers) > 5000
    texts = _redis_texts(emulator)
    cached = "\n".join(texts)
    assert len(cached) > 300_000  # the decompressed results are really there
    assert "****" in cached
    # The scan finds raw values when they are there.
    assert len(raw.found_in(str(raw.rows[:3]))) >= 9
    leaks = sorted(raw.found_in(cached))[:5]
    assert leaks == []


def test_stale_if_error_with_the_connector_stopped(
    emulator: Emulator,
    cloud: Cloud,
    customer: CustomerDatabase,
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    customer.fill(300)
    created, config = register_connector(
        cloud, customer, tmp_path / "connector", "tunnel", listen=f"127.0.0.1:{unused_tcp_port}"
    )
    sql = "SELECT id, name, phone, city FROM customers WHERE id <= $1 ORDER BY id"
    with ConnectorProcess(config):
        first = _query(cloud, created["id"], sql, [50])
        assert first.status_code == 200, first.text
        assert first.headers["X-Cache"] == "MISS"
        assert first.headers["Age"] == "0"
        second = _query(cloud, created["id"], sql, [50])
        assert second.headers["X-Cache"] == "HIT"
        assert second.json()["rows"] == first.json()["rows"]
    time.sleep(1.1)  # so the stale copy's Age is visibly positive
    stale = _query(cloud, created["id"], sql, [50], max_age=0)
    assert stale.status_code == 200, stale.text
    assert stale.headers["X-Cache"] == "STALE"
    assert int(stale.headers["Age"]) >= 1
    assert stale.json()["rows"] == first.json()["rows"]
    assert stale.json()["cached_at"] == first.json()["cached_at"]
    never = _query(cloud, created["id"], sql, [10])
    assert never.status_code == 503, never.text
    assert int(never.headers["Retry-After"]) >= 1
    assert never.headers["Content-Type"].startswith("application/problem+json")
