"""The relay client against a fake relay that follows PROTOCOL.md (every request's signature
checked, job lists signed) and a real PostgreSQL customer database with fake PII."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connector.config import parse_config
from connector.relay import RelayClient
from connector.service import QueryService
from hybrid.connectors.protocol import dumps
from tests.functional.connector.test_postgres_source import CustomerDatabase
from tests.support.connector import (
    PEOPLE,
    connector_config,
    create_people,
    log_of,
    new_secret,
    pii_in,
    raw_values_in,
    start_connector,
    stop_connector,
    wait_for,
    write_config,
)
from tests.support.fake_relay import FakeRelay, running_relay

CONNECTOR_ID = "con_test"
PEOPLE_SQL = "SELECT id, name, phone, id_no, email, note, city FROM people ORDER BY id"


@pytest.fixture(scope="module")
def customer(endpoints: Any) -> Iterator[CustomerDatabase]:
    db = CustomerDatabase.create(endpoints.database_url)
    try:
        create_people(db)
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="module")
def secret() -> str:
    return new_secret()


@pytest.fixture
def relay(secret: str) -> Iterator[FakeRelay]:
    with running_relay(CONNECTOR_ID, secret) as fake:
        yield fake
    assert not [s for s in fake.seen if s.status == 401], "a connector request did not verify"


def people(**extra: Any) -> dict[str, Any]:
    return {"source": "erp", "sql": PEOPLE_SQL, **extra}


def relay_config(
    customer: CustomerDatabase, secret: str, relay: FakeRelay, data_dir: Path, **extra: Any
) -> dict[str, Any]:
    return connector_config(
        customer=customer,
        data_dir=data_dir,
        secret=secret,
        transport="relay",
        cloud_url=relay.url,
        connector_id=CONNECTOR_ID,
        **extra,
    )


@contextmanager
def connector(
    customer: CustomerDatabase, secret: str, relay: FakeRelay, data_dir: Path, **extra: Any
) -> Iterator[RelayClient]:
    config = parse_config(relay_config(customer, secret, relay, data_dir, **extra), {})
    service = QueryService(config)
    service.startup_self_test()
    client = RelayClient(config, service)
    thread = threading.Thread(target=client.run, daemon=True)
    thread.start()
    try:
        yield client
    finally:
        client.stop()
        thread.join(timeout=15)
        assert not thread.is_alive(), "the relay client did not stop"
        service.close()


def all_ids(relay: FakeRelay, job_id: str) -> list[int]:
    return [row["id"] for chunk in relay.chunks(job_id) for row in chunk.rows]


def test_query_and_ping_jobs_arrive_in_order_masked_and_done(
    customer: CustomerDatabase, secret: str, relay: FakeRelay, tmp_path: Path
) -> None:
    with connector(customer, secret, relay, tmp_path) as client:
        job = relay.add_job(people(cursor_columns=["id"]), chunk_rows=300)
        ping = relay.add_job(None, kind="ping")
        wait_for(lambda: relay.done(job) and relay.done(ping), what="both jobs done")
        wait_for(lambda: client.spool.depth == 0, what="an empty spool")

    chunks = relay.chunks(job)
    assert [c.seq for c in chunks] == [0, 1, 2, 3]
    assert [c.row_count for c in chunks] == [300, 300, 300, 100]
    assert [c.done for c in chunks] == [False, False, False, True]
    assert [c.total_rows for c in chunks] == [300, 600, 900, 1000]
    assert [c.cursor for c in chunks] == [[300], [600], [900], [1000]]
    assert chunks[0].columns == ("id", "name", "phone", "id_no", "email", "note", "city")
    assert all_ids(relay, job) == list(range(1, PEOPLE + 1))
    assert {r.encoding for r in relay.received(job)} == {"zstd"}
    assert all("rows" in r.raw and "data" not in r.raw for r in relay.received(job))
    rows_bytes = b"".join(dumps(c.rows) for c in chunks)
    assert pii_in(rows_bytes) == []
    assert raw_values_in(rows_bytes) == []
    assert chunks[0].rows[0]["phone"] == "139****0001"

    (answer,) = relay.chunks(ping)
    assert answer.done
    assert answer.row_count == 0
    assert answer.health is not None
    assert answer.health["status"] == "ok"
    assert answer.health["transport"] == "relay"
    assert answer.health["stats"]["queries"] == 1
    polls = relay.polls()
    assert polls
    assert {p.instance for p in polls} == {client.instance}


def test_chunks_spool_while_the_cloud_fails_then_drain_in_order(
    customer: CustomerDatabase, secret: str, relay: FakeRelay, tmp_path: Path
) -> None:
    relay.result_status = 503
    with connector(customer, secret, relay, tmp_path) as client:
        job = relay.add_job(people(), chunk_rows=100)
        wait_for(lambda: client.spool.depth == 10, what="all ten chunks spooled")
        wait_for(
            lambda: any(p.spool_depth >= 9 for p in relay.polls()),
            what="a poll reporting the spool depth",
        )
        assert len(relay.posts(job)) >= 1
        assert relay.chunks(job) == []
        relay.result_status = None
        wait_for(lambda: relay.done(job), what="the job delivered after recovery")
        wait_for(lambda: client.spool.depth == 0, what="an empty spool")

    chunks = relay.chunks(job)
    assert [c.seq for c in chunks] == list(range(10))
    assert all_ids(relay, job) == list(range(1, PEOPLE + 1))
    assert relay.duplicates == 0


def test_a_409_drops_the_job_and_its_spooled_chunks(
    customer: CustomerDatabase, secret: str, relay: FakeRelay, tmp_path: Path
) -> None:
    with connector(customer, secret, relay, tmp_path) as client:
        refused = relay.add_job(people(), chunk_rows=25, conflict=True)
        wait_for(lambda: any(s.status == 409 for s in relay.posts(refused)), what="the cloud's 409")
        wait_for(lambda: refused not in client.spool.jobs(), what="the job's chunks dropped")
        later = relay.add_job(people(max_rows=30), chunk_rows=100)
        wait_for(lambda: relay.done(later), what="the next job")
        assert refused in client.cancelled
        wait_for(lambda: client.spool.depth == 0, what="an empty spool")
    # Forty chunks were due; the connector stopped at the first refusal (a chunk or two may
    # have been in flight).
    assert len(relay.posts(refused)) <= 3
    assert relay.chunks(refused) == []
    assert all_ids(relay, later) == list(range(1, 31))


def test_an_unsigned_or_forged_job_list_is_refused(
    customer: CustomerDatabase, secret: str, relay: FakeRelay, tmp_path: Path
) -> None:
    with connector(customer, secret, relay, tmp_path):
        for mode in ("no", "forged"):
            relay.sign_jobs = mode
            job = relay.add_job(people(max_rows=10))
            wait_for(lambda job=job: job in relay.handed_out, what="the job handed out")
            handed = len(relay.polls())
            wait_for(lambda handed=handed: len(relay.polls()) >= handed + 2, what="more polls")
            assert relay.posts(job) == [], f"ran a job from a job list signed: {mode}"
        relay.sign_jobs = "yes"
        good = relay.add_job(people(max_rows=10))
        wait_for(lambda: relay.done(good), what="a signed job")


def test_low_bandwidth_sends_columnar_zstd_and_skips_unchanged_rows(
    customer: CustomerDatabase, secret: str, relay: FakeRelay, tmp_path: Path
) -> None:
    request = people(key_columns=["id"], cursor_columns=["id"])
    with connector(
        customer, secret, relay, tmp_path, low_bandwidth=True, max_bytes_per_s="4MiB"
    ) as client:
        first = relay.add_job(request, chunk_rows=200)
        wait_for(lambda: relay.done(first), what="the first run")
        second = relay.add_job(request, chunk_rows=200)
        wait_for(lambda: relay.done(second), what="the second run")
        with customer.connect() as con:
            con.run("UPDATE people SET city = 'Shenzhen' WHERE id = 7")
        try:
            third = relay.add_job(request, chunk_rows=200)
            wait_for(lambda: relay.done(third), what="the third run")
        finally:
            with customer.connect() as con:
                con.run("UPDATE people SET city = '上海' WHERE id = 7")
        wait_for(lambda: client.spool.depth == 0, what="an empty spool")

    sent = relay.received(first)
    assert len(sent) == 10  # half of chunk_rows per chunk
    assert all("data" in r.raw and "rows" not in r.raw for r in sent)
    assert {r.encoding for r in sent} == {"zstd"}
    assert sent[0].raw["data"]["id"][:3] == [1, 2, 3]
    assert all_ids(relay, first) == list(range(1, PEOPLE + 1))

    again = relay.chunks(second)
    assert len(again) == 1  # all-unchanged chunks ride on the last one
    assert sum(c.row_count for c in again) == 0
    assert sum(c.skipped for c in again) == PEOPLE
    assert again[-1].cursor == [PEOPLE]
    assert again[-1].total_rows == PEOPLE
    first_bytes = sum(r.wire_bytes for r in sent)
    second_bytes = sum(r.wire_bytes for r in relay.received(second))
    assert second_bytes < first_bytes / 20

    changed = relay.chunks(third)
    assert [row["id"] for c in changed for row in c.rows] == [7]
    assert changed[0].rows[0]["city"] == "Shenzhen"
    assert sum(c.skipped for c in changed) == PEOPLE - 1


def test_a_restarted_connector_drains_the_old_spool_before_polling(
    customer: CustomerDatabase, secret: str, relay: FakeRelay, tmp_path: Path
) -> None:
    config_file = write_config(
        tmp_path / "connector.yaml", relay_config(customer, secret, relay, tmp_path / "data")
    )
    spool_dir = tmp_path / "data" / "spool"
    relay.result_status = 503
    first = start_connector(config_file)
    try:
        job = relay.add_job(people(), chunk_rows=100)
        wait_for(
            lambda: len(list(spool_dir.glob("*.chunk"))) == 10,
            timeout=30,
            what=f"ten spooled chunks (log: {log_of(first)[-2000:]})",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    old_instances = {s.instance for s in relay.seen}
    assert relay.chunks(job) == []

    relay.result_status = None
    second = start_connector(config_file)
    try:
        wait_for(lambda: relay.done(job), timeout=30, what="the leftover chunks delivered")

        def new_requests() -> list[Any]:
            return [s for s in list(relay.seen) if s.instance not in old_instances]

        wait_for(lambda: any(s.method == "GET" for s in new_requests()), what="the first new poll")
        new = new_requests()
        assert new[0].method == "POST", "the new process polled before draining its spool"
        first_poll = next(i for i, s in enumerate(new) if s.method == "GET")
        assert all(s.method == "POST" for s in new[:first_poll])
        assert first_poll >= 10
    finally:
        code = stop_connector(second)
    assert code == 0
    assert [c.seq for c in relay.chunks(job)] == list(range(10))
    assert all_ids(relay, job) == list(range(1, PEOPLE + 1))
    assert relay.duplicates == 0
    log = log_of(second)
    assert "connector stopped exit_code=0" in log
    assert secret not in log
    assert raw_values_in(log.encode()) == []


def test_failed_queries_end_their_job_with_an_error_chunk(
    customer: CustomerDatabase, secret: str, relay: FakeRelay, tmp_path: Path
) -> None:
    with connector(customer, secret, relay, tmp_path) as client:
        refused = relay.add_job({"source": "erp", "sql": "DELETE FROM people"})
        leak = relay.add_job(people(masking={"columns": {"note": "keep"}}), chunk_rows=100)
        unknown = relay.add_job({"source": "nope", "sql": "SELECT 1"}, first_seq=5)
        for job in (refused, leak, unknown):
            wait_for(lambda job=job: relay.done(job), what="an error chunk")
        wait_for(lambda: client.spool.depth == 0, what="an empty spool")

    (only,) = relay.chunks(refused)
    assert (only.seq, only.done, only.row_count) == (0, True, 0)
    assert only.error is not None
    assert only.error["code"] == "query_rejected"

    rows, failed = relay.chunks(leak)
    assert [row["id"] for row in rows.rows] == list(range(1, 101))
    assert not rows.done
    assert (failed.seq, failed.done, failed.row_count) == (1, True, 0)
    assert failed.error is not None
    assert failed.error["code"] == "pii_detected"
    sent = b"".join(dumps(r.raw) for r in relay.received(leak))
    assert raw_values_in(sent) == []

    (missing,) = relay.chunks(unknown)
    assert missing.seq == 5
    assert missing.error is not None
    assert missing.error["code"] == "unknown_source"
