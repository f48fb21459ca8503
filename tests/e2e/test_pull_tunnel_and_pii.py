"""Tunnel pulls with the pull function killed mid-pull, and a scan of everything the cloud side
keeps (PostgreSQL, Redis, COS, the functions' logs) for raw PII after a Faker zh_CN pull."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_emulator.connector_process import ConnectorProcess
from local_emulator.customer_db import CustomerDatabase
from local_emulator.emulator import Emulator
from local_emulator.local_env import local_secrets
from tests.support.pii_scan import RawPii
from tests.support.pull_cloud import Cloud, assert_exact, register_connector

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

TIMER_CHILD = """
import json, sys
sys.path[:0] = [sys.argv[1] + "/layers/common", sys.argv[1]]
from tests.support.functions import load_function
from tests.support.http import context
module = load_function("pull_trigger")
event = json.load(open(sys.argv[1] + "/tests/events/timer.json"))
ctx = context("pull-trigger") | {"time_limit_in_ms": 60000}
print(json.dumps(module.main_handler(event, ctx)), flush=True)
"""


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("function-logs") / "functions.log"
    with path.open("ab") as handle:
        yield path
        handle.flush()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, logs: Path) -> Iterator[Emulator]:
    data_dir = tmp_path_factory.mktemp("tunnel-emulator")
    with (
        logs.open("ab") as sink,
        Emulator(
            ROOT / "serverless.yml", data_dir, retry_delays=(0.2, 0.2), worker_stdout=sink
        ) as running,
    ):
        yield running


def _timer_process(emulator: Emulator) -> subprocess.Popen[bytes]:
    """pull-trigger's minute timer, invoked in a process of its own (so it can be killed)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))},
        **emulator.endpoints.env(),
        "APP_ENV": "test",
        "LOG_LEVEL": "INFO",
        "SECRETS_ENCRYPTION_KEY": local_secrets(emulator.data_dir)["SECRETS_ENCRYPTION_KEY"],
    }
    return subprocess.Popen(
        [sys.executable, "-c", TIMER_CHILD, str(ROOT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _expire_lease(emulator: Emulator, job_id: str) -> None:
    """What the lease's TTL does after a holder died, without waiting 30 s for it."""
    import redis

    redis.Redis.from_url(emulator.endpoints.env()["REDIS_URL"]).delete(
        f"hybrid:lease:{{syncjob:{job_id}}}"
    )


def test_a_tunnel_pull_survives_the_pull_function_being_killed(
    emulator: Emulator,
    cloud: Cloud,
    customer: CustomerDatabase,
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    customer.fill(20_000)
    created, config = register_connector(
        cloud, customer, tmp_path / "connector", "tunnel", listen=f"127.0.0.1:{unused_tcp_port}"
    )
    with ConnectorProcess(config):
        job = cloud.job(created["id"], f"tunnel-{time.time_ns()}", page_rows=1000)
        execution_id = cloud.run(job["id"])
        rng = random.Random(11)
        stored_at_kills = []
        for _ in range(3):
            child = _timer_process(emulator)
            time.sleep(rng.uniform(1.0, 2.5))
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            stored_at_kills.append(len(cloud.records()))
            _expire_lease(emulator, job["id"])
        for _ in range(5):
            child = _timer_process(emulator)
            _out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err.decode()[-2000:]
            if cloud.execution(job["id"], execution_id)["status"] != "running":
                break
        execution = cloud.execution(job["id"], execution_id)
    assert execution["status"] == "success", execution.get("error")
    records = assert_exact(cloud, customer)
    assert {record["version"] for record in records.values()} == {1}
    assert any(0 < stored < 20_000 for stored in stored_at_kills), stored_at_kills


# --- no raw PII anywhere on the cloud side ------------------------------------------------------


def _cloud_texts(emulator: Emulator, logs: Path) -> Iterator[tuple[str, str]]:
    """Every text the cloud side holds: each table's rows, every Redis key and value, every COS
    object, and the functions' logs."""
    import redis

    from hybrid.db import database

    with database(emulator.endpoints.env()["DATABASE_URL"]).transaction() as tx:
        tables = [
            row["tablename"]
            for row in tx.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        for table in tables:
            for row in tx.rows(f'SELECT row_to_json(t)::text AS j FROM "{table}" t'):
                yield f"postgresql:{table}", row["j"]
        # bytea shows as hex in JSON: read it as text too (ASCII stays readable).
        binary = tx.rows(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type = 'bytea'"
        )
        for column in binary:
            for row in tx.rows(
                f"SELECT encode(\"{column['column_name']}\", 'escape') AS j "
                f'FROM "{column["table_name"]}" WHERE "{column["column_name"]}" IS NOT NULL'
            ):
                yield f"postgresql:{column['table_name']}.{column['column_name']}", row["j"]
    client = redis.Redis.from_url(emulator.endpoints.env()["REDIS_URL"])
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        values: list[Any] = []
        if kind == "string":
            values = [client.get(key)]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = list(client.hgetall(key).items())
        elif kind in ("set", "zset"):
            values = list(client.smembers(key)) if kind == "set" else client.zrange(key, 0, -1)
        yield "redis", f"{key!r} {values!r}"
    for path in (emulator.data_dir / "cos").rglob("*"):
        if path.is_file():
            yield f"cos:{path.name}", path.read_bytes().decode("utf-8", "replace")
    yield "logs", logs.read_text(encoding="utf-8", errors="replace")


def test_no_raw_pii_reaches_the_cloud_after_a_faker_pull(
    emulator: Emulator, cloud: Cloud, customer: CustomerDatabase, tmp_path: Path, logs: Path
) -> None:
    customer.fill(2000, faker=True, seed=20261123)
    created, config = register_connector(
        cloud, customer, tmp_path / "connector", "relay", poll_wait=2
    )
    connector = ConnectorProcess(config).start(
        ready=lambda: cloud.last_seen(created["id"]) is not None
    )
    with connector:  # already started: entering does not start a second process
        job = cloud.job(created["id"], f"pii-{time.time_ns()}", page_rows=400)
        execution = cloud.wait(job["id"], cloud.run(job["id"]))
    assert connector.process is not None
    assert connector.process.poll() is not None  # stopped, none left behind
    assert execution["status"] == "success", execution
    assert_exact(cloud, customer)

    raw = RawPii(customer)
    assert len(raw.numbers) > 5000  # the scan looks for something real
    texts: dict[str, list[str]] = {}
    for where, text in _cloud_texts(emulator, logs):
        texts.setdefault(where.split(".")[0], []).append(text)

    # The scan finds raw values when they are there (full-width digits included).
    assert len(raw.found_in(json.dumps(raw.rows[:3], ensure_ascii=False))) >= 9
    leaks: list[tuple[str, str]] = []
    scanned = 0
    for where, parts in texts.items():
        text = "\n".join(parts)
        scanned += len(text)
        leaks.extend((where, value) for value in sorted(raw.found_in(text))[:3])
    assert scanned > 1_000_000
    assert leaks == []
