"""Every PostgreSQL attack of the guard's corpus is stopped by at least two independent layers.

Each attack runs twice against a real PostgreSQL:

1. with the SQL guard switched off (`PostgresSource._execute`, straight to execution) as the
   read-only role that ``connector/GRANTS.md`` creates: the database-side layers (read-only
   transaction, privileges, the plan check, one statement in a cursor, caps, rollback and
   session reset) must refuse it, or, for the few statements PostgreSQL lets any role run
   inside a read-only transaction, leave no trace that outlives the query (proved per attack);
2. through the guard as an over-privileged role (writes, CREATE, file/program roles, dblink):
   the guard must refuse it before the database sees it.

Afterwards the customer data is unchanged. The layer that stopped each run is recorded in the
test's output (``pytest -s``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connector.sources.errors import (
    LimitExceededError,
    PlanRejectedError,
    QueryFailedError,
)
from connector.sources.postgres import PostgresSource
from connector.sqlguard import QueryRejectedError
from tests.functional.connector.test_postgres_source import (
    ALLOWED,
    CUSTOMERS,
    ORDERS,
    CustomerDatabase,
)
from tests.unit.connector.test_sqlguard_corpus import POSTGRES_ATTACKS, Attack

TIMEOUT_MS = 1_000
MAX_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def customer(endpoints: Any) -> Iterator[CustomerDatabase]:
    db = CustomerDatabase.create(endpoints.database_url)
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="module")
def baseline(customer: CustomerDatabase) -> tuple[Any, ...]:
    snapshot = customer.snapshot()
    assert snapshot[:3] == (CUSTOMERS, ORDERS, 3)
    return snapshot


@pytest.fixture(scope="module")
def unguarded(customer: CustomerDatabase) -> Iterator[PostgresSource]:
    """The read-only role; one connection, so a trace left by one query would meet the next."""
    source = PostgresSource(
        customer.url("reader"),
        allowed_tables=ALLOWED,
        statement_timeout_ms=TIMEOUT_MS,
        max_bytes=MAX_BYTES,
        pool_size=1,
    )
    source.self_test()
    try:
        yield source
    finally:
        source.close()


@pytest.fixture(scope="module")
def over_privileged(customer: CustomerDatabase) -> Iterator[PostgresSource]:
    """A role that could do almost anything (its self-test would fail; it is not run)."""
    source = PostgresSource(
        customer.url("writer"), allowed_tables=ALLOWED, statement_timeout_ms=TIMEOUT_MS
    )
    try:
        yield source
    finally:
        source.close()


def database_layer(error: Exception) -> str | None:
    """The database-side layer an error comes from, or None when it is not a refusal."""
    if isinstance(error, PlanRejectedError):
        return "plan check (system objects)"
    if isinstance(error, LimitExceededError):
        return f"{error.kind} cap"
    if not isinstance(error, QueryFailedError):
        return None
    code, message = error.sqlstate or "", error.message
    if code == "42501":
        return "privileges"
    if code in {"25006", "25001"}:
        return "read-only transaction"
    if code == "42601" and "multiple commands" in message:
        return "one statement (extended protocol)"
    if (code == "42601" and "memory exhausted" in message) or code == "54001":
        return "server parser limits"
    if code in {"42601", "0A000"}:
        return "cursor (EXPLAIN/DECLARE take one plain query)"
    if code == "42883":
        return "exact names (no such function)"
    if code == "26000":
        return "no such prepared statement (PREPARE is refused, sessions are reset)"
    return None


# Statements PostgreSQL lets any role run in a read-only transaction: each check proves that
# nothing they did outlives the query (ROLLBACK, then DISCARD ALL before the connection is
# reused). Each returns the layer that undid the attack.
Verifier = Callable[[CustomerDatabase, PostgresSource, list[dict[str, Any]]], str]


def _setting_reverted(_: CustomerDatabase, source: PostgresSource, __: list) -> str:
    rows = list(source._execute("SELECT current_setting('default_transaction_read_only') AS v", ()))
    assert rows == [{"v": "on"}]
    return "rollback (setting reverted)"


def _timeout_still_applies(_: CustomerDatabase, source: PostgresSource, __: list) -> str:
    with pytest.raises(LimitExceededError, match="time"):
        list(source._execute("SELECT pg_sleep(5)", ()))
    return "rollback (statement timeout restored)"


def _transaction_aborted(customer: CustomerDatabase, _: PostgresSource, rows: list) -> str:
    xid = next(iter(rows[0].values()))
    with customer.connect() as con:
        assert con.run("SELECT txid_status(:xid)", xid=xid) == [["aborted"]]
    return "rollback (its transaction aborted)"


def _lock_released(customer: CustomerDatabase, _: PostgresSource, __: list) -> str:
    with customer.connect() as con:
        assert con.run("SELECT pg_try_advisory_lock(4242)") == [[True]]
        con.run("SELECT pg_advisory_unlock(4242)")
    return "session reset (advisory lock released)"


NEUTRALISED: dict[str, Verifier] = {
    "pg-set-config-default-read-only": _setting_reverted,
    "pg-set-config-qualified-timeout": _timeout_still_applies,
    "pg-txid-current": _transaction_aborted,
    "pg-advisory-lock": _lock_released,
}


def run_unguarded(customer: CustomerDatabase, source: PostgresSource, attack: Attack) -> str:
    """The layer that stopped the attack with the guard switched off."""
    listener = _Listener(customer) if attack.id == "pg-notify" else None
    refusal: Exception | None = None
    rows: list[dict[str, Any]] = []
    try:
        rows = list(source._execute(attack.sql, attack.params))
    except (QueryRejectedError, QueryFailedError, LimitExceededError) as error:
        refusal = error
    finally:
        if listener is not None:
            listener.close()
    if refusal is not None:
        layer = database_layer(refusal)
        assert layer, f"{attack.id}: unexpected refusal {refusal!r}"
        return layer
    if listener is not None:
        assert listener.received == [], "a notification escaped the rolled-back transaction"
        return "rollback (notifications discarded)"
    assert attack.id in NEUTRALISED, f"{attack.id} ran with the guard off and nothing stopped it"
    return NEUTRALISED[attack.id](customer, source, rows)


class _Listener:
    """A second session listening on the channel the notify attack writes to."""

    def __init__(self, customer: CustomerDatabase) -> None:
        self._context = customer.connect()
        self._con = self._context.__enter__()
        self._con.run("LISTEN leak")
        self.received: list[Any] = []

    def close(self) -> None:
        self._con.run("SELECT 1")
        self.received = list(self._con.notifications)
        self._context.__exit__(None, None, None)


@pytest.mark.parametrize("attack", POSTGRES_ATTACKS, ids=[a.id for a in POSTGRES_ATTACKS])
def test_every_attack_is_stopped_by_two_layers(
    customer: CustomerDatabase,
    baseline: tuple[Any, ...],
    unguarded: PostgresSource,
    over_privileged: PostgresSource,
    attack: Attack,
) -> None:
    database_side = run_unguarded(customer, unguarded, attack)

    with pytest.raises(QueryRejectedError) as caught:
        over_privileged.query(attack.sql, list(attack.params))
    assert not isinstance(caught.value, PlanRejectedError), "the guard let it through"

    assert customer.snapshot() == baseline
    print(f"\n{attack.id:40} guard off: {database_side:48} guard on: sql guard")


def test_the_over_privileged_role_really_could_write(
    customer: CustomerDatabase, over_privileged: PostgresSource
) -> None:
    """The guard-on runs prove something only if the role would otherwise succeed."""
    with customer.connect() as con:
        con.run(f"SET ROLE {customer.role('writer')}")
        con.run("START TRANSACTION READ WRITE")
        con.run("DELETE FROM orders WHERE id = 1")
        con.run("CREATE TABLE stolen AS SELECT * FROM secrets")
        con.run("ROLLBACK")
