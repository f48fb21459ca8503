"""``python -m connector doctor`` against a real PostgreSQL and a fake relay: a good setup is
all OK (exit 0); an unreachable source and a wrong secret are FAIL lines (exit 1)."""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.__main__ import main
from connector.doctor import run_doctor, run_self_test
from tests.functional.connector.test_postgres_source import CustomerDatabase
from tests.support.connector import ROOT, connector_config, new_secret, write_config
from tests.support.fake_relay import FakeRelay, running_relay


@pytest.fixture(scope="module")
def customer(endpoints: Any) -> Iterator[CustomerDatabase]:
    db = CustomerDatabase.create(endpoints.database_url)
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with running_relay("con_test", new_secret()) as fake:
        yield fake


def doctor(config: dict[str, Any], tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    file = write_config(tmp_path / "connector.yaml", config)
    out = io.StringIO()
    code = run_doctor(str(file), quick="--quick" in args, env={}, out=out)
    return code, out.getvalue().splitlines()


def statuses(lines: list[str]) -> dict[str, str]:
    """check name → its worst status."""
    order = {"OK": 0, "WARN": 1, "FAIL": 2}
    worst: dict[str, str] = {}
    for line in lines:
        status, rest = line.split(maxsplit=1)
        name = rest.split(":", 1)[0]
        if order[status] >= order.get(worst.get(name, "OK"), 0):
            worst[name] = status
    return worst


def test_a_good_relay_setup_passes(
    customer: CustomerDatabase, relay: FakeRelay, tmp_path: Path
) -> None:
    config = connector_config(
        customer=customer,
        data_dir=tmp_path / "data",
        secret=relay.secret,
        transport="relay",
        cloud_url=relay.url,
    )
    code, lines = doctor(config, tmp_path)
    found = statuses(lines)
    assert code == 0, lines
    assert found["config"] == "OK"
    assert found["data_dir"] == "OK"
    assert found["source erp"] == "OK"
    assert found["source erp self-test"] == "WARN"  # the role may create temp tables
    assert found["egress"] == "OK"
    assert found["cloud"] == "OK"
    assert found["clock"] == "OK"
    assert any(line.startswith("OK   source erp: reachable (") for line in lines)
    assert relay.polls()[0].path.endswith("/jobs?peek=1&wait=0")
    assert relay.secret not in "\n".join(lines)


def test_an_unreachable_source_and_a_wrong_secret_fail(
    customer: CustomerDatabase, relay: FakeRelay, tmp_path: Path, unused_tcp_port: int
) -> None:
    config = connector_config(
        customer=customer,
        data_dir=tmp_path / "data",
        secret=new_secret(),  # not the one the cloud knows
        transport="relay",
        cloud_url=relay.url,
    )
    config["sources"]["erp"]["url"] = f"postgresql://reader:pw@127.0.0.1:{unused_tcp_port}/erp"
    code, lines = doctor(config, tmp_path)
    found = statuses(lines)
    assert code == 1
    assert found["config"] == "OK"
    assert found["source erp"] == "FAIL"
    assert "source erp self-test" not in found
    assert found["egress"] == "OK"
    assert found["cloud"] == "FAIL"
    assert any("refused our signature (401)" in line for line in lines)
    assert config["secret"] not in "\n".join(lines)
    assert ":pw@" not in "\n".join(lines)


def test_clock_skew_is_reported(
    customer: CustomerDatabase, relay: FakeRelay, tmp_path: Path
) -> None:
    relay.server_time_offset_s = 30
    config = connector_config(
        customer=customer,
        data_dir=tmp_path / "data",
        secret=relay.secret,
        transport="relay",
        cloud_url=relay.url,
    )
    code, lines = doctor(config, tmp_path)
    assert code == 0
    assert statuses(lines)["clock"] == "WARN"
    relay.server_time_offset_s = -200
    code, lines = doctor(config, tmp_path)
    assert code == 1
    assert statuses(lines)["clock"] == "FAIL"


def test_a_writable_role_and_a_bad_config_fail(
    customer: CustomerDatabase, tmp_path: Path, unused_tcp_port: int
) -> None:
    config = connector_config(
        customer=customer, data_dir=tmp_path / "data", secret=new_secret(), port=unused_tcp_port
    )
    config["sources"]["erp"]["url"] = customer.url("writer")
    code, lines = doctor(config, tmp_path)
    found = statuses(lines)
    assert code == 1
    assert found["source erp"] == "OK"
    assert found["source erp self-test"] == "FAIL"
    assert found["listen"] == "OK"
    assert any("not read-only" in line for line in lines)
    out = io.StringIO()
    assert run_self_test(str(tmp_path / "connector.yaml"), env={}, out=out) == 78

    config["chunk_rows"] = 0
    code, lines = doctor(config, tmp_path)
    assert code == 1
    assert lines == ["FAIL config: chunk_rows: must be at least 1"]


def test_a_busy_listen_port_fails(
    customer: CustomerDatabase, tmp_path: Path, unused_tcp_port: int
) -> None:
    config = connector_config(
        customer=customer, data_dir=tmp_path / "data", secret=new_secret(), port=unused_tcp_port
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", unused_tcp_port))
        code, lines = doctor(config, tmp_path)
    assert code == 1
    assert statuses(lines)["listen"] == "FAIL"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_the_cli_runs_doctor_and_refuses_to_start_a_writable_source(
    customer: CustomerDatabase, tmp_path: Path, unused_tcp_port: int
) -> None:
    config = connector_config(
        customer=customer, data_dir=tmp_path / "data", secret=new_secret(), port=unused_tcp_port
    )
    file = write_config(tmp_path / "good.yaml", config)
    result = subprocess.run(
        [sys.executable, "-m", "connector", "doctor", "--config", str(file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith("OK   config: valid")

    config["sources"]["erp"]["url"] = customer.url("writer")
    bad = write_config(tmp_path / "writer.yaml", config)
    assert main(["--config", str(bad)]) == 78
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 78


def test_quick_checks_liveness_only(
    customer: CustomerDatabase, tmp_path: Path, unused_tcp_port: int
) -> None:
    tunnel = connector_config(
        customer=customer, data_dir=tmp_path / "t", secret=new_secret(), port=unused_tcp_port
    )
    code, lines = doctor(tunnel, tmp_path, "--quick")
    assert code == 1
    assert statuses(lines) == {"config": "OK", "alive": "FAIL"}

    relay = connector_config(
        customer=customer,
        data_dir=tmp_path / "r",
        secret=new_secret(),
        transport="relay",
        cloud_url=f"http://127.0.0.1:{unused_tcp_port}",
    )
    code, lines = doctor(relay, tmp_path, "--quick")
    assert code == 0
    assert statuses(lines)["alive"] == "WARN"
    heartbeat = tmp_path / "r" / "heartbeat"
    heartbeat.parent.mkdir(parents=True)
    heartbeat.touch()
    code, lines = doctor(relay, tmp_path, "--quick")
    assert code == 0
    assert statuses(lines)["alive"] == "OK"
    old = time.time() - 3600
    os.utime(heartbeat, (old, old))
    code, lines = doctor(relay, tmp_path, "--quick")
    assert code == 1
    assert statuses(lines)["alive"] == "FAIL"
