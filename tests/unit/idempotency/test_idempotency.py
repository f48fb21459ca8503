"""Idempotency records against a real PostgreSQL: the protocol, lease loss and concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hybrid import idempotency
from hybrid.db import Database
from hybrid.idempotency import (
    IdempotencyInFlightError,
    IdempotencyKeyError,
    IdempotencyLeaseLostError,
    IdempotencyMismatchError,
    Replay,
    Reservation,
)

TENANT = "ten_idem"
OTHER_TENANT = "ten_idem_other"
SCOPE = "push.batch"
WRITES_TABLE = "idem_test_writes"


class Crash(Exception):
    """A simulated crash of the function at some point of a request."""


@pytest.fixture
def db(clean_db: str) -> Iterator[Database]:
    database = Database(clean_db)
    with database.transaction() as tx:
        for tenant in (TENANT, OTHER_TENANT):
            tx.execute("INSERT INTO tenants (id, name) VALUES (:id, :id)", id=tenant)
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {WRITES_TABLE} (id bigserial PRIMARY KEY, "
            "tenant_id text NOT NULL, key text NOT NULL, body bytea NOT NULL)"
        )
        tx.execute(f"TRUNCATE {WRITES_TABLE}")
    yield database
    with database.transaction() as tx:
        tx.execute(f"DROP TABLE IF EXISTS {WRITES_TABLE}")
    database.close()


def fingerprint(body: bytes) -> bytes:
    return idempotency.request_fingerprint("POST", "/api/v1/sync/push/batch", body)


def begin(db: Database, key: str, body: bytes, tenant: str = TENANT) -> Replay | Reservation:
    return idempotency.begin(
        db, tenant_id=tenant, scope=SCOPE, key=key, fingerprint=fingerprint(body)
    )


@dataclass(frozen=True)
class Outcome:
    kind: str  # "fresh" | "replay"
    body: bytes


def write_and_complete(
    db: Database, reservation: Reservation, body: bytes, *, crash_before_commit: bool = False
) -> bytes:
    """The request's data write and its idempotency completion, in one transaction."""
    with db.transaction() as tx:
        write_id = tx.scalar(
            f"INSERT INTO {WRITES_TABLE} (tenant_id, key, body) VALUES (:t, :k, :b) RETURNING id",
            t=reservation.tenant_id,
            k=reservation.key,
            b=body,
        )
        response = f"write-{write_id}".encode()
        idempotency.complete(
            tx, reservation, status=201, headers={"Content-Type": "text/plain"}, body=response
        )
        if crash_before_commit:
            raise Crash("before commit")
    return response


def request(db: Database, key: str, body: bytes, tenant: str = TENANT) -> Outcome:
    started = begin(db, key, body, tenant)
    if isinstance(started, Replay):
        return Outcome("replay", started.body)
    return Outcome("fresh", write_and_complete(db, started, body))


def writes(db: Database, key: str | None = None) -> list[bytes]:
    with db.transaction() as tx:
        rows = tx.rows(
            f"SELECT body FROM {WRITES_TABLE} "
            "WHERE CAST(:k AS text) IS NULL OR key = CAST(:k AS text) ORDER BY id",
            k=key,
        )
    return [bytes(row["body"]) for row in rows]


def expire_lease(db: Database, key: str) -> None:
    with db.transaction() as tx:
        tx.execute(
            "UPDATE idempotency_keys SET locked_until = now() - interval '1 second' "
            "WHERE key = :key",
            key=key,
        )


# --- fingerprints and keys ---------------------------------------------------------------------


def test_fingerprint_covers_method_path_and_body_unambiguously() -> None:
    base = idempotency.request_fingerprint("POST", "/a", b"b")
    assert len(base) == 32
    assert base == idempotency.request_fingerprint("post", "/a", b"b")
    assert base != idempotency.request_fingerprint("PUT", "/a", b"b")
    assert base != idempotency.request_fingerprint("POST", "/a", b"c")
    assert base != idempotency.request_fingerprint("POST", "/ab", b"")
    assert base != idempotency.request_fingerprint("POST", "/", b"ab")


@pytest.mark.parametrize("key", ["a", "x" * 255, "order-123:retry 2", "~!@#$%^&*()"])
def test_valid_keys(key: str) -> None:
    assert idempotency.validate_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "newline\n", "ключ", "\x7f"])
def test_invalid_keys_raise_key_error(db: Database, key: str) -> None:
    with pytest.raises(IdempotencyKeyError):
        begin(db, key, b"{}")


# --- the protocol ------------------------------------------------------------------------------


def test_first_request_writes_and_a_retry_replays_the_stored_response(db: Database) -> None:
    first = request(db, "k1", b'{"n": 1}')
    started = begin(db, "k1", b'{"n": 1}')

    assert first.kind == "fresh"
    assert started == Replay(status=201, headers={"Content-Type": "text/plain"}, body=first.body)
    assert writes(db) == [b'{"n": 1}']


def test_same_key_with_a_different_body_is_a_mismatch(db: Database) -> None:
    request(db, "k1", b"one")
    with pytest.raises(IdempotencyMismatchError):
        begin(db, "k1", b"two")


def test_a_different_body_while_in_flight_is_a_mismatch(db: Database) -> None:
    assert isinstance(begin(db, "k1", b"one"), Reservation)
    with pytest.raises(IdempotencyMismatchError):
        begin(db, "k1", b"two")


def test_same_request_while_in_flight_gets_409_with_retry_after(db: Database) -> None:
    assert isinstance(begin(db, "k1", b"one"), Reservation)
    with pytest.raises(IdempotencyInFlightError) as caught:
        begin(db, "k1", b"one")
    assert 55 <= caught.value.retry_after <= 60


def test_keys_are_scoped_by_tenant_and_scope(db: Database) -> None:
    request(db, "k1", b"one")
    assert request(db, "k1", b"two", tenant=OTHER_TENANT).kind == "fresh"
    other_scope = idempotency.begin(
        db, tenant_id=TENANT, scope="push.other", key="k1", fingerprint=fingerprint(b"three")
    )
    assert isinstance(other_scope, Reservation)


def test_crash_after_the_write_loses_nothing_and_duplicates_nothing(db: Database) -> None:
    reservation = begin(db, "k1", b"one")
    assert isinstance(reservation, Reservation)
    lost_response = write_and_complete(db, reservation, b"one")  # the client never sees it

    retry = request(db, "k1", b"one")

    assert retry == Outcome("replay", lost_response)
    assert writes(db) == [b"one"]


def test_crash_before_commit_writes_nothing_and_the_retry_takes_over(db: Database) -> None:
    reservation = begin(db, "k1", b"one")
    assert isinstance(reservation, Reservation)
    with pytest.raises(Crash):
        write_and_complete(db, reservation, b"one", crash_before_commit=True)
    assert writes(db) == []
    with pytest.raises(IdempotencyInFlightError):
        begin(db, "k1", b"one")

    expire_lease(db, "k1")
    taken = begin(db, "k1", b"one")

    assert isinstance(taken, Reservation)
    assert taken.takeover is True
    assert taken.owner != reservation.owner
    write_and_complete(db, taken, b"one")
    assert writes(db) == [b"one"]


def test_a_stale_holder_cannot_complete_after_a_takeover(db: Database) -> None:
    stale = begin(db, "k1", b"one")
    assert isinstance(stale, Reservation)
    expire_lease(db, "k1")
    fresh = begin(db, "k1", b"one")
    assert isinstance(fresh, Reservation)

    with pytest.raises(IdempotencyLeaseLostError):
        write_and_complete(db, stale, b"one")
    response = write_and_complete(db, fresh, b"one")

    assert writes(db) == [b"one"]
    assert request(db, "k1", b"one") == Outcome("replay", response)


def test_a_stale_holder_still_completes_when_nobody_took_over(db: Database) -> None:
    slow = begin(db, "k1", b"one")
    assert isinstance(slow, Reservation)
    expire_lease(db, "k1")
    response = write_and_complete(db, slow, b"one")
    assert request(db, "k1", b"one") == Outcome("replay", response)


def test_complete_twice_raises_lease_lost(db: Database) -> None:
    reservation = begin(db, "k1", b"one")
    assert isinstance(reservation, Reservation)
    write_and_complete(db, reservation, b"one")
    with pytest.raises(IdempotencyLeaseLostError):
        write_and_complete(db, reservation, b"one")
    assert writes(db) == [b"one"]


def test_release_lets_a_retry_start_at_once(db: Database) -> None:
    reservation = begin(db, "k1", b"one")
    assert isinstance(reservation, Reservation)
    assert idempotency.release(db, reservation) is True
    assert idempotency.release(db, reservation) is False
    # After a release even a different body may use the key: nothing was applied.
    assert request(db, "k1", b"two").kind == "fresh"


def test_release_does_not_touch_a_completed_or_taken_over_record(db: Database) -> None:
    stale = begin(db, "k1", b"one")
    assert isinstance(stale, Reservation)
    expire_lease(db, "k1")
    assert request(db, "k1", b"one").kind == "fresh"
    assert idempotency.release(db, stale) is False
    assert request(db, "k1", b"one").kind == "replay"


def test_release_swallows_a_database_outage(db: Database) -> None:
    reservation = begin(db, "k1", b"one")
    assert isinstance(reservation, Reservation)
    broken = Database("postgresql://nobody@127.0.0.1:1/none")
    assert idempotency.release(broken, reservation) is False


def test_a_record_past_its_retention_is_replaced(db: Database) -> None:
    request(db, "k1", b"one")
    with db.transaction() as tx:
        tx.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")

    again = request(db, "k1", b"two")

    assert again.kind == "fresh"
    assert writes(db) == [b"one", b"two"]
    assert request(db, "k1", b"two") == Outcome("replay", again.body)


def test_completion_extends_the_retention(db: Database) -> None:
    request(db, "k1", b"one")
    with db.transaction() as tx:
        row = tx.one(
            "SELECT state, expires_at - now() > interval '23 hours 59 minutes' AS kept, "
            "locked_until <= now() AS unlocked FROM idempotency_keys"
        )
    assert row == {"state": "completed", "kept": True, "unlocked": True}


def test_purge_expired_deletes_only_expired_records(db: Database) -> None:
    for key in ("old1", "old2", "new"):
        request(db, key, b"x")
    assert isinstance(begin(db, "running", b"x"), Reservation)
    with db.transaction() as tx:
        tx.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 hour' "
            "WHERE key LIKE 'old%'"
        )
    with db.transaction() as tx:
        assert idempotency.purge_expired(tx, limit=1) == 1
    with db.transaction() as tx:
        assert idempotency.purge_expired(tx, limit=100) == 1
        assert idempotency.purge_expired(tx, limit=100) == 0
        keys = tx.rows("SELECT key FROM idempotency_keys ORDER BY key")
    assert [row["key"] for row in keys] == ["new", "running"]


def test_begin_rejects_bad_settings(db: Database) -> None:
    with pytest.raises(ValueError, match="shorter"):
        idempotency.begin(
            db,
            tenant_id=TENANT,
            scope=SCOPE,
            key="k",
            fingerprint=b"x",
            lease_seconds=7200,
            retention_hours=1,
        )
    with pytest.raises(ValueError, match="scope"):
        idempotency.begin(db, tenant_id=TENANT, scope="", key="k", fingerprint=b"x")


# --- concurrency -------------------------------------------------------------------------------


def _run_threads(count: int, target: object) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrapped(index: int) -> None:
        try:
            target(index)  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_fifty_concurrent_identical_requests_write_once(db: Database, clean_db: str) -> None:
    count = 50
    connections = [Database(clean_db) for _ in range(count)]
    barrier = threading.Barrier(count)
    results: list[Outcome | int] = [0] * count

    def send(index: int) -> None:
        barrier.wait()
        try:
            results[index] = request(connections[index], "same-key", b'{"batch": 1}')
        except IdempotencyInFlightError as exc:
            results[index] = exc.retry_after

    try:
        errors = _run_threads(count, send)
    finally:
        for connection in connections:
            connection.close()

    assert not errors
    fresh = [r for r in results if isinstance(r, Outcome) and r.kind == "fresh"]
    replays = [r for r in results if isinstance(r, Outcome) and r.kind == "replay"]
    in_flight = [r for r in results if isinstance(r, int)]
    assert len(fresh) == 1
    assert len(fresh) + len(replays) + len(in_flight) == count
    assert all(r.body == fresh[0].body for r in replays)
    assert all(1 <= r <= 61 for r in in_flight), in_flight  # clocks: transaction starts
    assert writes(db) == [b'{"batch": 1}']
    assert request(db, "same-key", b'{"batch": 1}') == Outcome("replay", fresh[0].body)


def test_an_expired_reservation_is_taken_over_exactly_once(db: Database, clean_db: str) -> None:
    crashed = begin(db, "k1", b"one")
    assert isinstance(crashed, Reservation)
    expire_lease(db, "k1")

    count = 10
    connections = [Database(clean_db) for _ in range(count)]
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def take(index: int) -> None:
        barrier.wait()
        try:
            results[index] = begin(connections[index], "k1", b"one")
        except IdempotencyInFlightError as exc:
            results[index] = exc

    try:
        errors = _run_threads(count, take)
    finally:
        for connection in connections:
            connection.close()

    assert not errors
    taken = [r for r in results if isinstance(r, Reservation)]
    assert len(taken) == 1
    assert taken[0].takeover is True
    assert sum(isinstance(r, IdempotencyInFlightError) for r in results) == count - 1
    with pytest.raises(IdempotencyLeaseLostError):
        write_and_complete(db, crashed, b"one")
    write_and_complete(db, taken[0], b"one")
    assert writes(db) == [b"one"]
