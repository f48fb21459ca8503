"""A hypothesis state machine drives idempotency records in a real PostgreSQL and compares them
with a dict model: sends with the same or a different body, crashes after the write and before
the commit, held reservations finishing late or being released, lease and retention expiry,
purges and concurrent sends. The toy "write" is a row inserted in the same transaction as
`complete`, so the number of rows per key is the number of times a request was applied."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from hybrid import idempotency
from hybrid.db import Database
from hybrid.idempotency import (
    IdempotencyInFlightError,
    IdempotencyLeaseLostError,
    IdempotencyMismatchError,
    Replay,
    Reservation,
)

TENANT = "ten_model"
SCOPE = "push.batch"
WRITES_TABLE = "idem_model_writes"
CONCURRENCY = 4

KEYS = st.sampled_from(["k1", "k2"])
BODIES = st.sampled_from([b"A", b"B"])


class Crash(Exception):
    """The function dies at this point."""


@dataclass
class Entry:
    """The model of one key's record."""

    body: bytes
    completed: bool
    lease_active: bool
    owner: str | None  # the reservation that may complete an in-flight record
    response: bytes | None = None


@dataclass(frozen=True)
class Held:
    key: str
    body: bytes
    reservation: Reservation


@pytest.fixture
def databases(clean_db: str) -> Iterator[list[Database]]:
    pool = [Database(clean_db) for _ in range(CONCURRENCY)]
    with pool[0].transaction() as tx:
        tx.execute("INSERT INTO tenants (id, name) VALUES (:id, :id)", id=TENANT)
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {WRITES_TABLE} (id bigserial PRIMARY KEY, "
            "key text NOT NULL, body bytea NOT NULL)"
        )
    yield pool
    with pool[0].transaction() as tx:
        tx.execute(f"DROP TABLE IF EXISTS {WRITES_TABLE}")
    for database in pool:
        database.close()


class IdempotencyMachine(RuleBasedStateMachine):
    pool: ClassVar[list[Database]] = []

    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.db = self.pool[0]
        with self.db.transaction() as tx:
            tx.execute(f"TRUNCATE idempotency_keys, {WRITES_TABLE}")
        self.model: dict[str, Entry] = {}
        self.applied: dict[str, int] = {}

    # --- the system under test ---------------------------------------------------------------

    def _begin(self, key: str, body: bytes, db: Database | None = None) -> Replay | Reservation:
        fingerprint = idempotency.request_fingerprint("POST", "/push", body)
        return idempotency.begin(
            db or self.db, tenant_id=TENANT, scope=SCOPE, key=key, fingerprint=fingerprint
        )

    def _write(
        self,
        reservation: Reservation,
        body: bytes,
        *,
        crash_before_commit: bool = False,
        db: Database | None = None,
    ) -> bytes:
        with (db or self.db).transaction() as tx:
            write_id = tx.scalar(
                f"INSERT INTO {WRITES_TABLE} (key, body) VALUES (:k, :b) RETURNING id",
                k=reservation.key,
                b=body,
            )
            response = f"{reservation.key}:{body.decode()}:{write_id}".encode()
            idempotency.complete(tx, reservation, status=200, headers={}, body=response)
            if crash_before_commit:
                raise Crash()
        return response

    def _send(self, key: str, body: bytes, db: Database | None = None) -> tuple[str, bytes]:
        started = self._begin(key, body, db)
        if isinstance(started, Replay):
            return "replay", started.body
        return "fresh", self._write(started, body, db=db)

    # --- the model ---------------------------------------------------------------------------

    def _expected(self, key: str, body: bytes) -> str:
        """What `begin` must do: reserve, takeover, replay, mismatch or in_flight."""
        entry = self.model.get(key)
        if entry is None:
            return "reserve"
        if entry.body != body:
            return "mismatch"
        if entry.completed:
            return "replay"
        return "in_flight" if entry.lease_active else "takeover"

    def _check_refusal(self, expected: str, call: object) -> bool:
        """Run `call` when the model says begin refuses; True if it was handled here."""
        if expected == "mismatch":
            with pytest.raises(IdempotencyMismatchError):
                call()  # type: ignore[operator]
            return True
        if expected == "in_flight":
            with pytest.raises(IdempotencyInFlightError):
                call()  # type: ignore[operator]
            return True
        return False

    def _applied(self, key: str, body: bytes, response: bytes) -> None:
        self.applied[key] = self.applied.get(key, 0) + 1
        self.model[key] = Entry(body, True, False, None, response)

    # --- rules -------------------------------------------------------------------------------

    @rule(key=KEYS, body=BODIES)
    def send(self, key: str, body: bytes) -> None:
        expected = self._expected(key, body)
        if self._check_refusal(expected, lambda: self._send(key, body)):
            return
        kind, response = self._send(key, body)
        if expected == "replay":
            assert (kind, response) == ("replay", self.model[key].response)
        else:
            assert kind == "fresh"
            self._applied(key, body, response)

    @rule(key=KEYS, body=BODIES)
    def crash_after_write(self, key: str, body: bytes) -> None:
        """The data and the response commit; the function dies before answering."""
        expected = self._expected(key, body)
        if self._check_refusal(expected, lambda: self._begin(key, body)):
            return
        started = self._begin(key, body)
        if expected == "replay":
            assert isinstance(started, Replay)
            return
        assert isinstance(started, Reservation)
        self._applied(key, body, self._write(started, body))

    @rule(key=KEYS, body=BODIES)
    def crash_before_commit(self, key: str, body: bytes) -> None:
        """The function dies inside the data transaction: nothing commits, no release."""
        expected = self._expected(key, body)
        if self._check_refusal(expected, lambda: self._begin(key, body)):
            return
        started = self._begin(key, body)
        if expected == "replay":
            assert isinstance(started, Replay)
            return
        assert isinstance(started, Reservation)
        assert started.takeover is (expected == "takeover")
        with pytest.raises(Crash):
            self._write(started, body, crash_before_commit=True)
        self.model[key] = Entry(body, False, True, started.owner)

    @rule(target=held, key=KEYS, body=BODIES)
    def reserve(self, key: str, body: bytes) -> object:
        """Begin a request and keep it running across later steps."""
        expected = self._expected(key, body)
        if self._check_refusal(expected, lambda: self._begin(key, body)):
            return multiple()
        started = self._begin(key, body)
        if expected == "replay":
            assert isinstance(started, Replay)
            return multiple()
        assert isinstance(started, Reservation)
        assert started.takeover is (expected == "takeover")
        self.model[key] = Entry(body, False, True, started.owner)
        return Held(key, body, started)

    @rule(item=consumes(held))
    def finish(self, item: Held) -> None:
        """A held request writes and completes: only if its reservation is still current."""
        entry = self.model.get(item.key)
        current = (
            entry is not None and not entry.completed and entry.owner == item.reservation.owner
        )
        if not current:
            with pytest.raises(IdempotencyLeaseLostError):
                self._write(item.reservation, item.body)
            return
        self._applied(item.key, item.body, self._write(item.reservation, item.body))

    @rule(item=consumes(held))
    def abandon(self, item: Held) -> None:
        """A held request fails before writing and releases its reservation."""
        entry = self.model.get(item.key)
        current = (
            entry is not None and not entry.completed and entry.owner == item.reservation.owner
        )
        assert idempotency.release(self.db, item.reservation) is current
        if current:
            del self.model[item.key]

    @rule(key=KEYS)
    def expire_lease(self, key: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE idempotency_keys SET locked_until = now() - interval '1 second' "
                "WHERE key = :key AND state = 'in_flight'",
                key=key,
            )
        entry = self.model.get(key)
        if entry is not None and not entry.completed:
            entry.lease_active = False

    @rule(key=KEYS)
    def expire_retention(self, key: str) -> None:
        """A completed record outlives its retention: the key is free again."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
                "WHERE key = :key AND state = 'completed'",
                key=key,
            )
        entry = self.model.get(key)
        if entry is not None and entry.completed:
            del self.model[key]

    @rule()
    def purge(self) -> None:
        with self.db.transaction() as tx:
            idempotency.purge_expired(tx, limit=100)

    @rule(key=KEYS, body=BODIES)
    def concurrent_send(self, key: str, body: bytes) -> None:
        expected = self._expected(key, body)
        barrier = threading.Barrier(CONCURRENCY)
        results: list[object] = [None] * CONCURRENCY

        def one(index: int) -> None:
            barrier.wait()
            try:
                results[index] = self._send(key, body, self.pool[index])
            except Exception as exc:  # compared with the model below
                results[index] = exc

        threads = [threading.Thread(target=one, args=(i,)) for i in range(CONCURRENCY)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        if expected == "mismatch":
            assert all(isinstance(r, IdempotencyMismatchError) for r in results), results
            return
        if expected == "in_flight":
            assert all(isinstance(r, IdempotencyInFlightError) for r in results), results
            return
        if expected == "replay":
            assert all(r == ("replay", self.model[key].response) for r in results), results
            return
        fresh = [r for r in results if isinstance(r, tuple) and r[0] == "fresh"]
        assert len(fresh) == 1, results
        response = fresh[0][1]
        for other in results:
            if other is fresh[0]:
                continue
            assert other == ("replay", response) or isinstance(other, IdempotencyInFlightError), (
                results
            )
        self._applied(key, body, response)

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        with self.db.transaction() as tx:
            counts = tx.rows(f"SELECT key, count(*) AS n FROM {WRITES_TABLE} GROUP BY key")
            rows = tx.rows(
                "SELECT key, state, owner, response_body FROM idempotency_keys "
                "WHERE expires_at > now()"
            )
        assert {row["key"]: int(row["n"]) for row in counts} == {
            key: n for key, n in self.applied.items() if n
        }
        live = {row["key"]: row for row in rows}
        assert set(live) == set(self.model)
        for key, entry in self.model.items():
            row = live[key]
            assert row["state"] == ("completed" if entry.completed else "in_flight")
            if entry.completed:
                assert bytes(row["response_body"]) == entry.response
            else:
                assert row["owner"] == entry.owner


def test_idempotency_matches_the_model(databases: list[Database]) -> None:
    class Machine(IdempotencyMachine):
        pool = databases

    run_state_machine_as_test(
        Machine,
        settings=settings(max_examples=100, stateful_step_count=40, deadline=None),
    )
