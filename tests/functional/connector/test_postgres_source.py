"""PostgresSource against the real embedded PostgreSQL: a separate "customer" database, a
read-only role created by the statements of ``connector/GRANTS.md``, and roles that can write.

`CustomerDatabase` is also used by ``test_postgres_source_layers.py``.
"""

from __future__ import annotations

import gc
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pg8000.native
import pytest

from connector.sources.errors import (
    LimitExceededError,
    QueryFailedError,
    SourceUnavailableError,
    UnsafeSourceError,
)
from connector.sources.postgres import PostgresSource
from connector.sqlguard import QueryRejectedError
from tests.unit.connector.test_sqlguard import POSTGRES_QUERIES, Allowed

ROOT = Path(__file__).resolve().parents[3]
GRANTS = ROOT / "connector" / "GRANTS.md"
ALLOWED = ("customers", "orders")
CUSTOMERS = 50
ORDERS = 500

SCHEMA = """
CREATE TABLE customers (
    id serial PRIMARY KEY, name text NOT NULL, email text, phone text, 姓名 text);
CREATE TABLE orders (
    id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
    amount numeric(12, 2), status text, created_at timestamptz NOT NULL,
    payload jsonb, tags text[]);
CREATE TABLE secrets (id int, api_key text);
INSERT INTO customers (name, email, phone, 姓名)
SELECT (ARRAY['张三', '李四', '王五', 'Ann', 'bob'])[g % 5 + 1] || g, 'c' || g || '@example.cn',
       '1380013' || lpad(g::text, 4, '0'), CASE WHEN g = 1 THEN '张三' END
FROM generate_series(1, 50) AS g;
INSERT INTO orders (customer_id, amount, status, created_at, payload, tags)
SELECT g % 50 + 1, round((g * 1.37)::numeric, 2), (ARRAY['new', 'paid', 'void'])[g % 3 + 1],
       timestamptz '2024-01-01 00:00:00+00' + g * interval '7 hours',
       jsonb_build_object('k', g % 4, 'a', jsonb_build_object('b', g)),
       ARRAY['t' || g % 3, 't' || g % 5]
FROM generate_series(1, 500) AS g;
INSERT INTO secrets VALUES (1, 'sk-live-1'), (2, 'sk-live-2'), (3, 'sk-live-3');
-- Stand-ins for dblink (not shipped with the embedded server): like the extension's functions
-- they reach outside the caller's transaction, and GRANTS.md revokes them from PUBLIC.
CREATE FUNCTION dblink_exec(conn text, command text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN EXECUTE command; RETURN 'OK'; END $$;
CREATE FUNCTION dblink(conn text, query text) RETURNS SETOF record
    LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN RETURN QUERY EXECUTE query; END $$;
REVOKE EXECUTE ON FUNCTION dblink_exec(text, text), dblink(text, text) FROM PUBLIC;
"""


@dataclass
class CustomerDatabase:
    """A customer database on the test server, with its roles (dropped by `drop`)."""

    server_url: str
    name: str
    suffix: str
    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, server_url: str) -> CustomerDatabase:
        suffix = uuid.uuid4().hex[:8]
        db = cls(server_url=server_url, name=f"customer_{suffix}", suffix=suffix)
        with db.connect(database="postgres") as con:
            con.run(f"CREATE DATABASE {db.name}")
        with db.connect() as con:
            con.run(SCHEMA)
        db.create_role(
            "reader",
            grants_md_statements(
                db.role("reader"), db.name, "public", ALLOWED, db.new_password("reader")
            ),
        )
        db.create_role(
            "writer",
            [
                f"CREATE ROLE {db.role('writer')} LOGIN PASSWORD '{db.new_password('writer')}'",
                f"ALTER ROLE {db.role('writer')} SET default_transaction_read_only = on",
                f"GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {db.name} TO {db.role('writer')}",
                f"GRANT USAGE, CREATE ON SCHEMA public TO {db.role('writer')}",
                f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {db.role('writer')}",
                f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {db.role('writer')}",
                f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {db.role('writer')}",
                "GRANT pg_read_server_files, pg_write_server_files, pg_execute_server_program, "
                f"pg_signal_backend TO {db.role('writer')}",
            ],
        )
        return db

    def role(self, kind: str) -> str:
        return f"conn_{kind}_{self.suffix}"

    def new_password(self, kind: str) -> str:
        return self.passwords.setdefault(kind, uuid.uuid4().hex)

    def create_role(self, kind: str, statements: list[str]) -> None:
        self.new_password(kind)
        with self.connect() as con:
            for statement in statements:
                con.run(statement)

    def url(self, kind: str | None = None) -> str:
        """The DSN of one of the roles, or the superuser's when kind is None."""
        parts = urlsplit(self.server_url)
        netloc = parts.netloc
        if kind is not None:
            netloc = (
                f"{self.role(kind)}:{quote(self.passwords[kind])}@{parts.hostname}:{parts.port}"
            )
        return urlunsplit((parts.scheme, netloc, f"/{self.name}", "", ""))

    @contextmanager
    def connect(self, database: str | None = None) -> Iterator[pg8000.native.Connection]:
        parts = urlsplit(self.server_url)
        con = pg8000.native.Connection(
            parts.username or "postgres",
            password=parts.password,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            database=database or self.name,
        )
        try:
            yield con
        finally:
            con.close()

    def snapshot(self) -> tuple[Any, ...]:
        """What no attack may change: row counts, a checksum, and that nothing was created."""
        with self.connect() as con:
            return tuple(
                con.run(
                    "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), "
                    "(SELECT count(*) FROM secrets), (SELECT sum(amount) FROM orders), "
                    "(SELECT string_agg(name, ',' ORDER BY id) FROM customers), "
                    "(SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                    " ON n.oid = c.relnamespace WHERE n.nspname = 'public')"
                )[0]
            )

    def drop(self) -> None:
        with self.connect(database="postgres") as con:
            con.run(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            for kind in self.passwords:
                con.run(f"DROP ROLE IF EXISTS {self.role(kind)}")


def grants_md_statements(
    role: str, database: str, schema: str, tables: tuple[str, ...], password: str
) -> list[str]:
    """The PostgreSQL block of GRANTS.md with its placeholders filled in."""
    text = GRANTS.read_text(encoding="utf-8")
    block = re.search(r"<!-- grants:postgres -->\s*```sql\n(.*?)```", text, re.S)
    assert block, "GRANTS.md lost its PostgreSQL block"
    statements = []
    for statement in block.group(1).split(";"):
        statement = re.sub(r"--[^\n]*", "", statement).strip()
        if not statement:
            continue
        filled = (
            statement.replace("<connector_role>", role)
            .replace("<password>", password)
            .replace("<database>", database)
            .replace("<schema>", schema)
        )
        if "<table>" in filled:
            statements += [filled.replace("<table>", table) for table in tables]
        else:
            statements.append(filled)
    assert not any("<" in s and ">" in s for s in statements), statements
    return statements


@pytest.fixture(scope="module")
def customer(endpoints: Any) -> Iterator[CustomerDatabase]:
    db = CustomerDatabase.create(endpoints.database_url)
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def reader(customer: CustomerDatabase) -> Iterator[PostgresSource]:
    source = PostgresSource(customer.url("reader"), allowed_tables=ALLOWED, pool_size=1)
    try:
        yield source
    finally:
        source.close()


def direct_rows(customer: CustomerDatabase, sql: str, params: tuple[Any, ...]) -> list[tuple]:
    with customer.connect() as con:
        con.run("START TRANSACTION READ ONLY")
        context = con.execute_unnamed(sql, params)
        con.run("ROLLBACK")
        return [tuple(row) for row in context.rows or []]


def _sorted(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=repr)


# --- self-test --------------------------------------------------------------------------------


def test_the_role_made_by_grants_md_passes_the_self_test(reader: PostgresSource) -> None:
    report = reader.self_test()
    assert len(report.checks) == 3
    assert any("temporary tables" in warning for warning in report.warnings)
    assert not any("default_transaction_read_only" in warning for warning in report.warnings)


def test_a_role_that_can_write_fails_the_self_test_even_with_read_only_default(
    customer: CustomerDatabase,
) -> None:
    source = PostgresSource(customer.url("writer"), allowed_tables=ALLOWED)
    try:
        with pytest.raises(UnsafeSourceError) as caught:
            source.self_test()
    finally:
        source.close()
    problems = " | ".join(caught.value.problems)
    assert "a deliberate INSERT on public.orders succeeded (READ WRITE)" in problems
    assert "a deliberate DELETE on public.customers succeeded (READ WRITE)" in problems
    assert "has TRUNCATE on public.orders" in problems
    assert "can create objects in schema public" in problems
    assert "can create schemas in this database" in problems
    assert "is a member of pg_write_server_files" in problems
    assert "is a member of pg_execute_server_program" in problems
    assert "can execute dblink_exec(text,text)" in problems
    assert customer.snapshot()[:3] == (CUSTOMERS, ORDERS, 3)


def test_a_superuser_fails_the_self_test(customer: CustomerDatabase) -> None:
    source = PostgresSource(customer.url(), allowed_tables=ALLOWED)
    try:
        with pytest.raises(UnsafeSourceError, match="is a superuser"):
            source.self_test()
    finally:
        source.close()


@pytest.mark.parametrize(
    ("grant", "finding"),
    [
        ("GRANT pg_read_server_files TO {role}", "is a member of pg_read_server_files"),
        ("GRANT UPDATE (status) ON orders TO {role}", "has UPDATE on public.orders"),
        ("GRANT EXECUTE ON FUNCTION dblink(text, text) TO {role}", "can execute dblink(text,text)"),
        ("GRANT CREATE ON SCHEMA public TO {role}", "can create objects in schema public"),
        ("ALTER ROLE {role} CREATEROLE", "can create roles"),
    ],
)
def test_one_extra_power_on_a_select_only_role_fails_the_self_test(
    customer: CustomerDatabase, grant: str, finding: str
) -> None:
    kind = f"extra{uuid.uuid4().hex[:6]}"
    role = customer.role(kind)
    statements = grants_md_statements(
        role, customer.name, "public", ALLOWED, customer.new_password(kind)
    )
    customer.create_role(kind, [*statements, grant.format(role=role)])
    source = PostgresSource(customer.url(kind), allowed_tables=ALLOWED)
    try:
        with pytest.raises(UnsafeSourceError) as caught:
            source.self_test()
    finally:
        source.close()
    assert any(finding in problem for problem in caught.value.problems), caught.value.problems


def test_a_missing_allowlisted_table_is_a_warning(customer: CustomerDatabase) -> None:
    source = PostgresSource(customer.url("reader"), allowed_tables=(*ALLOWED, "invoices"))
    try:
        report = source.self_test()
    finally:
        source.close()
    assert "allowlisted table public.invoices does not exist" in report.warnings


# --- queries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", POSTGRES_QUERIES, ids=lambda q: q.sql[:50])
def test_allowed_queries_return_what_postgres_returns_for_the_original_text(
    customer: CustomerDatabase, reader: PostgresSource, query: Allowed
) -> None:
    with reader.query(query.sql, list(query.params)) as stream:
        rows = [tuple(row.values()) for row in stream]
    assert rows
    if query.deterministic:
        assert _sorted(rows) == _sorted(direct_rows(customer, query.sql, query.params))
    assert not stream.truncated


def test_rows_stream_as_dicts_with_columns(reader: PostgresSource) -> None:
    stream = reader.query("SELECT id, name FROM customers WHERE id <= $1 ORDER BY id", [3])
    assert stream.columns == ("id", "name")
    rows = list(stream)
    assert [row["id"] for row in rows] == [1, 2, 3]
    assert stream.row_count == 3
    assert stream.byte_count > 0


def test_parameters_are_bound_never_interpolated(reader: PostgresSource) -> None:
    hostile = "x' OR '1'='1'; DROP TABLE orders; --"
    assert list(reader.query("SELECT id FROM customers WHERE name = $1", [hostile])) == []
    echoed = list(
        reader.query("SELECT CAST($1 AS text) AS v, CAST($2 AS text) AS w", [hostile, "$1"])
    )
    assert echoed == [{"v": hostile, "w": "$1"}]


def test_a_wrong_number_of_parameters_is_refused_before_the_database(
    reader: PostgresSource,
) -> None:
    with pytest.raises(QueryRejectedError, match="takes 1 parameters, 2 were given"):
        reader.query("SELECT id FROM customers WHERE id = $1", [1, 2])
    with pytest.raises(QueryRejectedError, match="must be a list"):
        reader.query("SELECT id FROM customers WHERE id = $1", "1")  # type: ignore[arg-type]
    with pytest.raises(QueryRejectedError, match="cannot be of type dict"):
        reader.query("SELECT id FROM customers WHERE id = $1", [{"id": 1}])


def test_the_row_cap_ends_the_stream_with_a_truncated_marker(customer: CustomerDatabase) -> None:
    source = PostgresSource(
        customer.url("reader"), allowed_tables=ALLOWED, max_rows=100, fetch_rows=30
    )
    try:
        page = source.query("SELECT id FROM orders ORDER BY id", max_rows=10)
        assert [row["id"] for row in page] == list(range(1, 11))
        assert page.truncated
        capped = source.query("SELECT id FROM orders ORDER BY id", max_rows=1_000)
        assert len(list(capped)) == 100
        assert capped.truncated
        exact = source.query("SELECT id FROM orders WHERE id <= 100")
        assert len(list(exact)) == 100
        assert not exact.truncated
    finally:
        source.close()


def test_the_byte_cap_raises_and_frees_the_connection(customer: CustomerDatabase) -> None:
    source = PostgresSource(
        customer.url("reader"), allowed_tables=ALLOWED, max_bytes=1_000, pool_size=1
    )
    try:
        stream = source.query("SELECT id, name, email, phone FROM customers")
        with pytest.raises(LimitExceededError) as caught:
            list(stream)
        assert caught.value.kind == "bytes"
        assert 0 < stream.byte_count <= 1_000
        assert len(list(source.query("SELECT id FROM customers WHERE id = $1", [1]))) == 1
    finally:
        source.close()


def test_a_slow_allowed_query_is_stopped_by_the_time_cap(customer: CustomerDatabase) -> None:
    source = PostgresSource(
        customer.url("reader"), allowed_tables=ALLOWED, statement_timeout_ms=500, pool_size=1
    )
    try:
        started = time.monotonic()
        with pytest.raises(LimitExceededError) as caught:
            list(
                source.query(
                    "SELECT count(*) FROM generate_series(1, 100000) AS a(n) "
                    "CROSS JOIN generate_series(1, 100000) AS b(n)"
                )
            )
        assert caught.value.kind == "time"
        assert time.monotonic() - started < 5
        with pytest.raises(LimitExceededError, match="time"):
            list(source._execute("SELECT pg_sleep(5)", ()))
        assert list(source.query("SELECT 1 AS one")) == [{"one": 1}]
    finally:
        source.close()


def test_the_time_cap_spans_every_fetch_of_a_query(customer: CustomerDatabase) -> None:
    source = PostgresSource(
        customer.url("reader"),
        allowed_tables=ALLOWED,
        statement_timeout_ms=1_000,
        fetch_rows=1,
        pool_size=1,
    )
    try:
        stream = source._execute("SELECT g, pg_sleep(0.15) FROM generate_series(1, 20) AS g", ())
        with pytest.raises(LimitExceededError, match="time"):
            list(stream)
        assert 1 <= stream.row_count < 7
    finally:
        source.close()


def test_a_stream_closed_early_or_dropped_returns_its_connection(
    customer: CustomerDatabase,
) -> None:
    source = PostgresSource(customer.url("reader"), allowed_tables=ALLOWED, pool_size=1)
    try:
        stream = source.query("SELECT id FROM orders")
        next(stream)
        stream.close()
        abandoned = source.query("SELECT id FROM orders")
        next(abandoned)
        del abandoned
        gc.collect()
        assert len(list(source.query("SELECT id FROM orders"))) == ORDERS
    finally:
        source.close()


def test_a_dead_idle_connection_is_replaced(customer: CustomerDatabase) -> None:
    source = PostgresSource(customer.url("reader"), allowed_tables=ALLOWED, pool_size=1)
    try:
        assert list(source.query("SELECT 1 AS one")) == [{"one": 1}]
        with customer.connect() as con:
            con.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role",
                role=customer.role("reader"),
            )
        time.sleep(0.2)
        assert list(source.query("SELECT 1 AS one")) == [{"one": 1}]
    finally:
        source.close()


def test_repeated_column_names_get_numbered_keys(reader: PostgresSource) -> None:
    stream = reader.query("SELECT id, id, 1, 2, id AS id_2 FROM customers WHERE id = 1")
    assert stream.columns == ("id", "id_3", "?column?", "?column?_2", "id_2")
    assert list(stream) == [{"id": 1, "id_3": 1, "?column?": 1, "?column?_2": 2, "id_2": 1}]


def test_a_failed_query_does_not_quote_the_data_it_choked_on(reader: PostgresSource) -> None:
    with pytest.raises(QueryFailedError) as caught:
        list(reader.query("SELECT CAST(name AS integer) FROM customers"))
    assert caught.value.sqlstate == "22P02"
    assert "张三" not in str(caught.value)
    assert "李四" not in str(caught.value)
    with pytest.raises(QueryFailedError) as caught:
        list(reader.query("SELECT CAST($1 AS integer)", ["13800138000x"]))
    assert "13800138000" not in str(caught.value)


def test_ping_measures_latency_in_milliseconds(reader: PostgresSource) -> None:
    latency = reader.ping()
    assert 0 < latency < 1_000


def test_an_unreachable_server_or_bad_password_is_unavailable(
    customer: CustomerDatabase, unused_tcp_port: int
) -> None:
    down = PostgresSource(
        f"postgresql://u:p@127.0.0.1:{unused_tcp_port}/db",
        allowed_tables=ALLOWED,
        connect_timeout_s=2,
    )
    with pytest.raises(SourceUnavailableError, match="cannot connect"):
        down.ping()
    secret = "not-the-password-" + uuid.uuid4().hex
    parts = urlsplit(customer.url("reader"))
    bad = PostgresSource(
        f"postgresql://{customer.role('reader')}:{secret}@{parts.hostname}:{parts.port}/x",
        allowed_tables=ALLOWED,
    )
    with pytest.raises(SourceUnavailableError) as caught:
        bad.query("SELECT 1")
    assert secret not in str(caught.value)


def test_connections_set_tcp_nodelay(reader: PostgresSource) -> None:
    list(reader.query("SELECT 1 AS one"))
    connection = reader._pool._idle[0]
    sock = connection._usock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
