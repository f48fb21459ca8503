"""MySQLSource against the real MariaDB test server: a ``shop`` database, a read-only user
created by the MySQL block of ``connector/GRANTS.md``, and a user that can do anything.

The last part runs the guard's MySQL attack corpus twice, as the PostgreSQL layer tests do:
with the SQL guard switched off (`MySQLSource._execute`) as the read-only user, where the
database-side layers must refuse each attack or leave no trace of it (proved per attack), and
through the guard as the over-privileged user, where the guard must refuse it. The layer that
stopped each run is printed (``pytest -s``).
"""

from __future__ import annotations

import gc
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest

from connector.sources.errors import (
    LimitExceededError,
    QueryFailedError,
    SourceUnavailableError,
    UnsafeSourceError,
)
from connector.sources.mysql import MySQLSource
from connector.sqlguard import QueryRejectedError, check_query
from tests.unit.connector.test_sqlguard import MYSQL_QUERIES
from tests.unit.connector.test_sqlguard_corpus import MYSQL_ATTACKS, Attack

ROOT = Path(__file__).resolve().parents[3]
GRANTS = ROOT / "connector" / "GRANTS.md"
DATABASE = "shop"
ALLOWED = ("customers", "orders")
CUSTOMERS = 50
ORDERS = 500
HOST = "127.0.0.1"
TIMEOUT_MS = 1_000

SCHEMA = [
    "CREATE TABLE customers (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL, "
    "email varchar(100), phone varchar(20), `姓名` varchar(20))",
    "CREATE TABLE orders (id int AUTO_INCREMENT PRIMARY KEY, customer_id int NOT NULL, "
    "amount decimal(12, 2), status varchar(10), created_at datetime NOT NULL, payload json)",
    "CREATE TABLE secrets (id int, api_key varchar(40))",
]
NAMES = ("张三", "李四", "王五", "Ann", "bob")


@dataclass
class Shop:
    """The customer database on the test server, with its users (dropped by `drop`)."""

    server: Any
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    passwords: dict[str, str] = field(default_factory=dict)

    def user(self, kind: str) -> str:
        return f"conn_{kind}_{self.suffix}"

    def new_password(self, kind: str) -> str:
        return self.passwords.setdefault(kind, uuid.uuid4().hex)

    def url(self, kind: str) -> str:
        return str(self.server.url(self.user(kind), self.passwords[kind], DATABASE))

    def root(self) -> pymysql.connections.Connection[Any]:
        return self.server.connect(db=DATABASE, autocommit=True)

    def execute(self, statements: list[str]) -> None:
        con = self.root()
        try:
            with con.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            con.close()

    def rows(self, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        con = self.root()
        try:
            with con.cursor() as cursor:
                cursor.execute(sql, params)
                return [tuple(row) for row in cursor.fetchall()]
        finally:
            con.close()

    def create_user(self, kind: str, statements: list[str]) -> None:
        self.new_password(kind)
        self.execute(statements)

    def source(self, kind: str, **options: Any) -> MySQLSource:
        options.setdefault("allowed_tables", ALLOWED)
        return MySQLSource(self.url(kind), database=DATABASE, **options)

    def snapshot(self) -> tuple[Any, ...]:
        """What no attack may change: row counts, a checksum, the tables, no new files."""
        return (
            *self.rows(
                "SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM orders), "
                "(SELECT COUNT(*) FROM secrets), (SELECT SUM(amount) FROM orders), "
                "(SELECT GROUP_CONCAT(name ORDER BY id) FROM customers), "
                "(SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'shop'), "
                "(SELECT COUNT(*) FROM information_schema.routines)"
            )[0],
            tuple(sorted(p.name for p in Path(self.server.files_dir).iterdir())),
        )

    def drop(self) -> None:
        self.execute(
            [f"DROP DATABASE IF EXISTS {DATABASE}"]
            + [f"DROP USER IF EXISTS '{self.user(kind)}'@'{HOST}'" for kind in self.passwords]
        )


def grants_md_statements(user: str, host: str, tables: tuple[str, ...], password: str) -> list[str]:
    """The MySQL block of GRANTS.md with its placeholders filled in."""
    text = GRANTS.read_text(encoding="utf-8")
    block = re.search(r"<!-- grants:mysql -->\s*```sql\n(.*?)```", text, re.S)
    assert block, "GRANTS.md lost its MySQL block"
    statements = []
    for statement in block.group(1).split(";"):
        statement = re.sub(r"--[^\n]*", "", statement).strip()
        if not statement:
            continue
        filled = (
            statement.replace("<connector_user>", user)
            .replace("<connector_host>", host)
            .replace("<password>", password)
            .replace("<database>", DATABASE)
        )
        if "<table>" in filled:
            statements += [filled.replace("<table>", table) for table in tables]
        else:
            statements.append(filled)
    assert not any("<" in s and ">" in s for s in statements), statements
    return statements


@pytest.fixture(scope="module")
def shop(mariadb: Any) -> Iterator[Shop]:
    db = Shop(mariadb)
    admin = db.server.connect(autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        admin.close()
    db.execute(SCHEMA)
    con = db.root()
    try:
        with con.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO customers (name, email, phone, `姓名`) VALUES (%s, %s, %s, %s)",
                [
                    (
                        f"{NAMES[g % 5]}{g}",
                        f"c{g}@example.cn",
                        f"1380013{g:04d}",
                        "张三" if g == 1 else None,
                    )
                    for g in range(1, CUSTOMERS + 1)
                ],
            )
            cursor.executemany(
                "INSERT INTO orders (customer_id, amount, status, created_at, payload) "
                "VALUES (%s, %s, %s, %s, %s)",
                [
                    (
                        g % 50 + 1,
                        Decimal(g * 137) / 100,
                        ("new", "paid", "void")[g % 3],
                        datetime(2024, 1, 1) + timedelta(hours=7 * g),
                        f'{{"k": {g % 4}, "a": {{"b": {g}}}}}',
                    )
                    for g in range(1, ORDERS + 1)
                ],
            )
            cursor.execute("INSERT INTO secrets VALUES (1, 'sk-live-1'), (2, 'sk-live-2')")
    finally:
        con.close()
    db.create_user(
        "reader",
        grants_md_statements(db.user("reader"), HOST, ALLOWED, db.new_password("reader")),
    )
    db.create_user(
        "writer",
        [
            f"CREATE USER '{db.user('writer')}'@'{HOST}' "
            f"IDENTIFIED BY '{db.new_password('writer')}'",
            f"GRANT ALL PRIVILEGES ON *.* TO '{db.user('writer')}'@'{HOST}' WITH GRANT OPTION",
        ],
    )
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="module")
def baseline(shop: Shop) -> tuple[Any, ...]:
    snapshot = shop.snapshot()
    assert snapshot[:3] == (CUSTOMERS, ORDERS, 2)
    return snapshot


@pytest.fixture
def reader(shop: Shop) -> Iterator[MySQLSource]:
    source = shop.source("reader", pool_size=1)
    try:
        yield source
    finally:
        source.close()


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=repr)


# --- self-test --------------------------------------------------------------------------------


def test_the_user_made_by_grants_md_passes_the_self_test(reader: MySQLSource) -> None:
    report = reader.self_test()
    assert len(report.checks) == 2
    assert report.warnings == ()


def test_an_over_privileged_user_fails_the_self_test(shop: Shop, baseline: tuple[Any, ...]) -> None:
    source = shop.source("writer")
    try:
        with pytest.raises(UnsafeSourceError) as caught:
            source.self_test()
    finally:
        source.close()
    problems = " | ".join(caught.value.problems)
    assert "holds global privileges: ALL PRIVILEGES" in problems
    assert "may grant its privileges" in problems
    assert shop.snapshot() == baseline


@pytest.mark.parametrize(
    ("grant", "finding"),
    [
        ("GRANT FILE ON *.* TO {user}", "holds FILE"),
        ("GRANT PROCESS ON *.* TO {user}", "holds PROCESS"),
        ("GRANT SUPER ON *.* TO {user}", "holds SUPER"),
        ("GRANT SELECT ON shop.* TO {user}", "on every table of shop"),
        (
            "GRANT SELECT ON shop.secrets TO {user}",
            "may read shop.secrets, which is not allowlisted",
        ),
        ("GRANT UPDATE (status) ON shop.orders TO {user}", "holds UPDATE on shop.orders"),
        ("GRANT INSERT, DELETE ON shop.orders TO {user}", "holds INSERT, DELETE on shop.orders"),
    ],
)
def test_one_extra_power_on_a_select_only_user_fails_the_self_test(
    shop: Shop, grant: str, finding: str
) -> None:
    kind = f"x{uuid.uuid4().hex[:6]}"
    user = f"'{shop.user(kind)}'@'{HOST}'"
    statements = grants_md_statements(shop.user(kind), HOST, ALLOWED, shop.new_password(kind))
    shop.create_user(kind, [*statements, grant.format(user=user)])
    source = shop.source(kind)
    try:
        with pytest.raises(UnsafeSourceError) as caught:
            source.self_test()
    finally:
        source.close()
    assert any(finding in problem for problem in caught.value.problems), caught.value.problems


def test_a_missing_allowlisted_table_is_a_warning(shop: Shop) -> None:
    source = shop.source("reader", allowed_tables=(*ALLOWED, "invoices"))
    try:
        report = source.self_test()
    finally:
        source.close()
    assert any("shop.invoices" in warning for warning in report.warnings)


# --- queries ----------------------------------------------------------------------------------

PARAMS: dict[int, tuple[Any, ...]] = {0: (7,), 1: (3,), 2: ("2024-02-01",), 9: ("42",)}
PARAMS |= {12: (Decimal(5), Decimal(50)), 13: (3,)}
# NOW() and CURDATE(); every customer has 10 orders, so ORDER BY n ties at LIMIT/OFFSET.
NONDETERMINISTIC = {1, 8}


@pytest.mark.parametrize("index", range(len(MYSQL_QUERIES)), ids=lambda i: MYSQL_QUERIES[i][:50])
def test_allowed_queries_return_what_the_server_returns_for_the_original_text(
    shop: Shop, reader: MySQLSource, index: int
) -> None:
    sql = MYSQL_QUERIES[index]
    params = PARAMS.get(index, ())
    assert check_query(sql, dialect="mysql", default_schema=DATABASE).param_count == len(params)
    with reader.query(sql, list(params)) as stream:
        rows = [tuple(row.values()) for row in stream]
    assert not stream.truncated
    if index in NONDETERMINISTIC:
        assert rows
        return
    direct = shop.rows(sql.replace("%", "%%").replace("?", "%s"), params)
    assert _sorted(rows) == _sorted(direct)


def test_rows_stream_as_dicts_with_columns(reader: MySQLSource) -> None:
    stream = reader.query("SELECT id, name FROM customers WHERE id <= ? ORDER BY id", [3])
    assert stream.columns == ("id", "name")
    rows = list(stream)
    assert [row["id"] for row in rows] == [1, 2, 3]
    assert stream.row_count == 3
    assert stream.byte_count > 0


def test_parameters_are_bound_never_interpolated(reader: MySQLSource) -> None:
    hostile = "x' OR '1'='1'; DROP TABLE orders; -- \\' %s ?"
    assert list(reader.query("SELECT id FROM customers WHERE name = ?", [hostile])) == []
    echoed = list(reader.query("SELECT CAST(? AS CHAR) AS v, CAST(? AS CHAR) AS w", [hostile, "?"]))
    assert echoed == [{"v": hostile, "w": "?"}]
    assert list(reader.query("SELECT COUNT(*) AS n FROM customers WHERE name LIKE '%5'")) == [
        {"n": 5}
    ]


def test_a_wrong_number_of_parameters_is_refused_before_the_database(reader: MySQLSource) -> None:
    with pytest.raises(QueryRejectedError, match="takes 1 parameters, 2 were given"):
        reader.query("SELECT id FROM customers WHERE id = ?", [1, 2])
    with pytest.raises(QueryRejectedError, match="must be a list"):
        reader.query("SELECT id FROM customers WHERE id = ?", "1")  # type: ignore[arg-type]
    with pytest.raises(QueryRejectedError, match="cannot be of type list"):
        reader.query("SELECT id FROM customers WHERE id = ?", [[1, 2]])


def test_the_row_cap_ends_the_stream_with_a_truncated_marker(shop: Shop) -> None:
    source = shop.source("reader", max_rows=100, fetch_rows=30, pool_size=1)
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


def test_the_byte_cap_raises_and_frees_the_connection(shop: Shop) -> None:
    source = shop.source("reader", max_bytes=1_000, pool_size=1)
    try:
        stream = source.query("SELECT id, name, email, phone FROM customers")
        with pytest.raises(LimitExceededError) as caught:
            list(stream)
        assert caught.value.kind == "bytes"
        assert 0 < stream.byte_count <= 1_000
        assert len(list(source.query("SELECT id FROM customers WHERE id = ?", [1]))) == 1
    finally:
        source.close()


def test_a_slow_query_is_stopped_by_the_time_cap(shop: Shop) -> None:
    source = shop.source("reader", statement_timeout_ms=500, pool_size=1)
    try:
        started = time.monotonic()
        with pytest.raises(LimitExceededError) as caught:
            list(
                source.query(
                    "SELECT COUNT(*) FROM orders a CROSS JOIN orders b CROSS JOIN orders c"
                )
            )
        assert caught.value.kind == "time"
        assert time.monotonic() - started < 5
        with pytest.raises(LimitExceededError, match="time"):
            list(source._execute("SELECT SLEEP(5)", ()))
        assert list(source.query("SELECT 1 AS one")) == [{"one": 1}]
    finally:
        source.close()


def test_a_stream_closed_early_or_dropped_returns_its_connection(shop: Shop) -> None:
    source = shop.source("reader", pool_size=1, fetch_rows=10)
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


def test_a_dead_idle_connection_is_replaced(shop: Shop) -> None:
    source = shop.source("reader", pool_size=1)
    try:
        assert list(source.query("SELECT 1 AS one")) == [{"one": 1}]
        for (pid,) in shop.rows(
            "SELECT id FROM information_schema.processlist WHERE user = %s", (shop.user("reader"),)
        ):
            shop.execute([f"KILL {int(pid)}"])
        time.sleep(0.2)
        assert list(source.query("SELECT 1 AS one")) == [{"one": 1}]
    finally:
        source.close()


def test_the_session_is_pinned_and_reset_between_queries(reader: MySQLSource) -> None:
    rows = list(reader._execute("SELECT @@session.sql_mode AS mode, @@autocommit AS ac", ()))
    assert "ANSI_QUOTES" not in rows[0]["mode"]
    assert "NO_BACKSLASH_ESCAPES" not in rows[0]["mode"]
    assert "STRICT_TRANS_TABLES" in rows[0]["mode"]
    list(reader._execute("SET @leak = 1", ()))
    assert list(reader._execute("SELECT @leak AS v", ())) == [{"v": None}]
    assert list(reader.query('SELECT "a" AS s')) == [{"s": "a"}]


def test_the_connection_refuses_multi_statements_and_local_files(reader: MySQLSource) -> None:
    with pytest.raises(QueryFailedError) as caught:
        list(reader._execute("SELECT 1; SELECT 2", ()))
    assert caught.value.sqlstate == "1064"
    reader.ping()
    connection = reader._pool._idle[0][0]
    assert not connection.client_flag & pymysql.constants.CLIENT.MULTI_STATEMENTS
    assert not connection.client_flag & pymysql.constants.CLIENT.LOCAL_FILES


def test_a_failed_query_does_not_quote_the_data_it_choked_on(reader: MySQLSource) -> None:
    with pytest.raises(QueryFailedError) as caught:
        list(reader._execute("SELECT name FROM customers LIMIT %s", ("张三",)))
    assert caught.value.sqlstate == "1064"
    assert "张三" not in str(caught.value)
    with pytest.raises(QueryFailedError) as caught:
        list(reader._execute("SELECT %s +", ("13800138000x",)))
    assert "13800138000" not in str(caught.value)


def test_ping_measures_latency_in_milliseconds(reader: MySQLSource) -> None:
    assert 0 < reader.ping() < 1_000


def test_an_unreachable_server_or_bad_password_is_unavailable(
    shop: Shop, unused_tcp_port: int
) -> None:
    down = MySQLSource(
        f"mysql://u:p@127.0.0.1:{unused_tcp_port}/shop",
        allowed_tables=ALLOWED,
        database=DATABASE,
        connect_timeout_s=2,
    )
    with pytest.raises(SourceUnavailableError, match="cannot connect"):
        down.ping()
    secret = "not-the-password-" + uuid.uuid4().hex
    bad = MySQLSource(
        str(shop.server.url(shop.user("reader"), secret, DATABASE)),
        allowed_tables=ALLOWED,
        database=DATABASE,
    )
    with pytest.raises(SourceUnavailableError) as caught:
        bad.query("SELECT 1")
    assert secret not in str(caught.value)


# --- the attack corpus, layer by layer ----------------------------------------------------------


@pytest.fixture(scope="module")
def unguarded(shop: Shop) -> Iterator[MySQLSource]:
    """The read-only user; one connection, so a trace left by one query would meet the next."""
    source = shop.source("reader", statement_timeout_ms=TIMEOUT_MS, pool_size=1)
    source.self_test()
    try:
        yield source
    finally:
        source.close()


@pytest.fixture(scope="module")
def over_privileged(shop: Shop) -> Iterator[MySQLSource]:
    """A user that could do anything (its self-test fails; it is not run)."""
    source = shop.source("writer", statement_timeout_ms=TIMEOUT_MS)
    try:
        yield source
    finally:
        source.close()


def database_layer(error: Exception) -> str | None:
    """The database-side layer an error comes from, or None when it is not a refusal."""
    if isinstance(error, LimitExceededError):
        return f"{error.kind} cap"
    if not isinstance(error, QueryFailedError):
        return None
    code = int(error.sqlstate or 0)
    if code in {1142, 1143, 1227, 1370, 1044}:
        return "privileges"
    if code == 1792:
        return "read-only transaction"
    if code == 1064:
        return "one statement (no multi-statements; server syntax)"
    if code == 4166:
        return "connection without LOCAL INFILE"
    if code == 1172:
        return "INTO @var refused (several rows); session reset clears variables"
    return None


Verifier = Callable[[Shop, MySQLSource, list[dict[str, Any]]], str]


def _time_cap_holds(_: Shop, source: MySQLSource, __: list[dict[str, Any]]) -> str:
    with pytest.raises(LimitExceededError, match="time"):
        list(source._execute("SELECT /*+ MAX_EXECUTION_TIME(0) */ SLEEP(5)", ()))
    return "time cap (SET STATEMENT max_statement_time holds)"


def _no_file_read(_: Shop, __: MySQLSource, rows: list[dict[str, Any]]) -> str:
    assert all(value is None for value in rows[-1].values())
    return "privileges (no FILE: LOAD_FILE gives NULL)"


def _lock_released(shop: Shop, _: MySQLSource, rows: list[dict[str, Any]]) -> str:
    assert shop.rows("SELECT IS_FREE_LOCK('connector')") == [(1,)]
    return "session reset (named lock released)"


def _row_locks_released(shop: Shop, _: MySQLSource, __: list[dict[str, Any]]) -> str:
    con = shop.root()
    try:
        with con.cursor() as cursor:
            cursor.execute("START TRANSACTION")
            cursor.execute("SELECT id FROM orders FOR UPDATE NOWAIT")
            cursor.execute("ROLLBACK")
    finally:
        con.close()
    return "rollback (shared row locks released)"


def _own_sessions_only(shop: Shop, _: MySQLSource, rows: list[dict[str, Any]]) -> str:
    assert rows
    assert {row["USER"] for row in rows} == {shop.user("reader")}
    return "privileges (no PROCESS: its own session only)"


def _variable_cleared(_: Shop, source: MySQLSource, __: list[dict[str, Any]]) -> str:
    assert list(source._execute("SELECT @a AS a", ())) == [{"a": None}]
    return "session reset (user variable cleared)"


def _setting_only(_: Shop, __: MySQLSource, rows: list[dict[str, Any]]) -> str:
    assert len(rows) == 1
    assert len(rows[0]) == 1
    return "harmless (a server setting any user may read, no data)"


def _handler_closed(_: Shop, source: MySQLSource, __: list[dict[str, Any]]) -> str:
    with pytest.raises(QueryFailedError):
        list(source._execute("HANDLER orders READ FIRST", ()))
    return "session reset (handler closed)"


def _statement_dropped(_: Shop, source: MySQLSource, __: list[dict[str, Any]]) -> str:
    with pytest.raises(QueryFailedError) as caught:
        list(source._execute("EXECUTE s", ()))
    assert caught.value.sqlstate == "1243"
    return "session reset (prepared statement dropped); privileges refuse DROP"


def _own_grants_only(shop: Shop, _: MySQLSource, rows: list[dict[str, Any]]) -> str:
    grants = " ".join(str(value) for row in rows for value in row.values())
    assert "secrets" not in grants
    assert "ALL PRIVILEGES" not in grants
    return "privileges (its own SELECT-only grants)"


def _allowlisted_data_only(_: Shop, __: MySQLSource, rows: list[dict[str, Any]]) -> str:
    fields = {str(row["Field_name"]) for row in rows}
    assert fields
    assert all("shop.orders." in name for name in fields)
    return "privileges (statistics of an allowlisted table only)"


def _bounded(_: Shop, __: MySQLSource, rows: list[dict[str, Any]]) -> str:
    assert len(rows) <= 1
    return "time and byte caps (finished within them)"


NEUTRALISED: dict[str, Verifier] = {
    "my-optimizer-hint": _time_cap_holds,
    "my-load-file": _no_file_read,
    "my-load-file-in-union": _no_file_read,
    "my-get-lock": _lock_released,
    "my-lock-in-share-mode": _row_locks_released,
    "my-information-schema": _own_sessions_only,
    "my-user-variable-assignment": _variable_cleared,
    "my-system-variable": _setting_only,
    "my-handler": _handler_closed,
    "my-prepare": _statement_dropped,
    "my-show-grants": _own_grants_only,
    "my-procedure-analyse": _allowlisted_data_only,
    "my-huge-in-list": _bounded,
    "my-deep-nesting": _bounded,
}


def run_unguarded(shop: Shop, source: MySQLSource, attack: Attack) -> str:
    """The layer that stopped the attack with the guard switched off."""
    refusal: Exception | None = None
    rows: list[dict[str, Any]] = []
    try:
        rows = list(source._execute(attack.sql.replace("%", "%%"), attack.params))
    except (QueryFailedError, LimitExceededError) as error:
        refusal = error
    if refusal is not None:
        layer = database_layer(refusal)
        assert layer, f"{attack.id}: unexpected refusal {refusal!r}"
        return layer
    assert attack.id in NEUTRALISED, f"{attack.id} ran with the guard off and nothing stopped it"
    return NEUTRALISED[attack.id](shop, source, rows)


@pytest.mark.parametrize("attack", MYSQL_ATTACKS, ids=[a.id for a in MYSQL_ATTACKS])
def test_every_attack_is_stopped_by_two_layers(
    shop: Shop,
    baseline: tuple[Any, ...],
    unguarded: MySQLSource,
    over_privileged: MySQLSource,
    attack: Attack,
) -> None:
    database_side = run_unguarded(shop, unguarded, attack)

    with pytest.raises(QueryRejectedError):
        over_privileged.query(attack.sql, list(attack.params))

    assert shop.snapshot() == baseline
    print(f"\n{attack.id:32} guard off: {database_side:64} guard on: sql guard")


def test_the_over_privileged_user_really_could_write(
    shop: Shop, over_privileged: MySQLSource
) -> None:
    """The guard-on runs prove something only if the user would otherwise succeed."""
    con = pymysql.connect(
        host=HOST,
        port=shop.server.port,
        user=shop.user("writer"),
        password=shop.passwords["writer"],
        database=DATABASE,
    )
    try:
        with con.cursor() as cursor:
            cursor.execute("START TRANSACTION")
            cursor.execute("DELETE FROM orders WHERE id = 1")
            cursor.execute(
                "SELECT LOAD_FILE('/etc/hostname') IS NOT NULL OR @@secure_file_priv IS NOT NULL"
            )
            assert cursor.fetchone() == (1,)
            cursor.execute("ROLLBACK")
    finally:
        con.close()


def test_keyset_pages_built_by_the_cloud_walk_the_whole_table_on_mariadb(
    reader: MySQLSource, shop: Shop
) -> None:
    """The cloud's pull pages (hybrid.sync.keyset), with cursor values as they travel (JSON),
    read every row exactly once, in order."""
    import json

    from hybrid.connectors.protocol import dumps
    from hybrid.sync.keyset import page_query

    expected = [row[0] for row in shop.rows("SELECT id FROM orders ORDER BY created_at, id", ())]
    seen: list[int] = []
    position: dict[str, Any] | None = None
    for _ in range(100):
        page = page_query(
            dialect="mysql",
            table="orders",
            mode="incremental",
            cursor_column="created_at",
            key_columns=["id"],
            position=position,
            limit=37,
        )
        with reader.query(page.sql, page.params, max_rows=37) as stream:
            rows = [json.loads(dumps(row)) for row in stream]
        seen.extend(row["id"] for row in rows)
        if not stream.truncated:
            break
        position = {"after": [rows[-1]["created_at"], rows[-1]["id"]]}
    assert seen == expected
    assert len(expected) > 37 * 3
