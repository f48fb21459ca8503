"""The attack corpus of the read-only SQL guard, and the proof that the guard rejects each one.

`ATTACKS` is also run against a real PostgreSQL by
``tests/functional/connector/test_postgres_source_layers.py`` (with the guard switched off, and
with an over-privileged role through the guard): every attack must be stopped twice.
Tables: ``customers`` and ``orders`` are allowlisted, ``secrets`` exists but is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from connector.sqlguard import QueryRejectedError, check_query

ALLOWED_TABLES = ("customers", "orders")
MYSQL_ALLOWED_TABLES = ("shop.customers", "shop.orders")


@dataclass(frozen=True)
class Attack:
    id: str
    dialect: str
    sql: str
    params: tuple[object, ...] = ()


DEEP_NESTING = "SELECT " + "(" * 4_000 + "1" + ")" * 4_000
# Deeper than PostgreSQL's own parser stack (10,000) and longer than the guard's limit.
DEEPER_NESTING = "SELECT " + "(" * 12_000 + "1" + ")" * 12_000
HUGE_IN_LIST = "SELECT id FROM customers WHERE name IN (" + ", ".join(["'x'"] * 60_000) + ")"
# 100 kB repeated on every row: past the guard's length limit, and past the byte cap.
HUGE_LITERAL = "SELECT id, '" + "x" * 100_000 + "' AS padding FROM orders"

POSTGRES_ATTACKS = [
    Attack("pg-stacked-drop", "postgres", "SELECT id FROM customers; DROP TABLE orders"),
    Attack(
        "pg-stacked-after-comment",
        "postgres",
        "SELECT id FROM customers /* just a read */; DELETE FROM orders",
    ),
    Attack(
        "pg-stacked-after-line-comment",
        "postgres",
        "SELECT id FROM customers --\n; UPDATE orders SET amount = 0",
    ),
    Attack(
        "pg-stacked-begin-commit",
        "postgres",
        "COMMIT; BEGIN READ WRITE; DELETE FROM orders",
    ),
    Attack(
        "pg-set-config-default-read-only",
        "postgres",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
    ),
    Attack(
        "pg-set-config-transaction-read-only",
        "postgres",
        "SELECT set_config('transaction_read_only', 'off', true), id FROM customers",
    ),
    Attack(
        "pg-set-config-qualified-timeout",
        "postgres",
        "SELECT pg_catalog.set_config('statement_timeout', '0', false)",
    ),
    Attack("pg-set-config-role", "postgres", "SELECT set_config('role', 'postgres', false)"),
    Attack("pg-read-file", "postgres", "SELECT pg_read_file('/etc/passwd')"),
    Attack("pg-read-binary-file", "postgres", "SELECT pg_read_binary_file('postgresql.conf')"),
    Attack("pg-ls-dir", "postgres", "SELECT * FROM pg_ls_dir('.') AS f(name)"),
    Attack("pg-stat-file", "postgres", "SELECT pg_stat_file('postgresql.conf')"),
    Attack("pg-lo-import", "postgres", "SELECT lo_import('/etc/passwd')"),
    Attack("pg-lo-export", "postgres", "SELECT lo_export(1, '/tmp/leak')"),
    Attack("pg-lo-creat", "postgres", "SELECT lo_creat(-1)"),
    Attack(
        "pg-dblink-exec",
        "postgres",
        "SELECT dblink_exec('dbname=customer', 'DROP TABLE orders')",
    ),
    Attack(
        "pg-dblink-from",
        "postgres",
        "SELECT * FROM dblink('dbname=customer', 'SELECT 1') AS t(x int)",
    ),
    Attack("pg-current-setting", "postgres", "SELECT current_setting('data_directory')"),
    Attack("pg-sleep", "postgres", "SELECT pg_sleep(30)"),
    Attack(
        "pg-sleep-in-cte",
        "postgres",
        "WITH s AS (SELECT pg_sleep_for('30 seconds')) SELECT * FROM s",
    ),
    Attack("pg-txid-current", "postgres", "SELECT txid_current()"),
    Attack("pg-nextval", "postgres", "SELECT nextval('orders_id_seq')"),
    Attack("pg-setval", "postgres", "SELECT setval('orders_id_seq', 1)"),
    Attack("pg-advisory-lock", "postgres", "SELECT pg_advisory_lock(4242)"),
    Attack("pg-notify", "postgres", "SELECT pg_notify('leak', name) FROM customers"),
    Attack("pg-reload-conf", "postgres", "SELECT pg_reload_conf()"),
    Attack(
        "pg-terminate-backend",
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres'",
    ),
    Attack(
        "pg-query-to-xml",
        "postgres",
        "SELECT query_to_xml('SELECT * FROM secrets', true, false, '')",
    ),
    Attack("pg-select-into", "postgres", "SELECT * INTO stolen FROM customers"),
    Attack("pg-select-into-temp", "postgres", "SELECT id INTO TEMP stolen FROM customers"),
    Attack(
        "pg-cte-delete",
        "postgres",
        "WITH gone AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM gone",
    ),
    Attack(
        "pg-cte-update",
        "postgres",
        "WITH u AS (UPDATE customers SET name = 'x' RETURNING id) SELECT * FROM u",
    ),
    Attack(
        "pg-cte-insert",
        "postgres",
        "WITH i AS (INSERT INTO orders (customer_id) VALUES (1) RETURNING id) SELECT * FROM i",
    ),
    Attack("pg-for-update", "postgres", "SELECT * FROM orders FOR UPDATE"),
    Attack("pg-for-no-key-update", "postgres", "SELECT * FROM orders FOR NO KEY UPDATE NOWAIT"),
    Attack("pg-for-share", "postgres", "SELECT * FROM orders FOR SHARE"),
    Attack(
        "pg-for-key-share-subquery",
        "postgres",
        "SELECT * FROM (SELECT id FROM orders FOR KEY SHARE) AS s",
    ),
    Attack(
        "pg-catalog-authid", "postgres", "SELECT rolname, rolpassword FROM pg_catalog.pg_authid"
    ),
    Attack("pg-catalog-shadow-unqualified", "postgres", "SELECT usename, passwd FROM pg_shadow"),
    Attack("pg-catalog-roles", "postgres", "SELECT rolname FROM pg_roles"),
    Attack("pg-catalog-settings", "postgres", "SELECT name, setting FROM pg_settings"),
    Attack(
        "pg-information-schema",
        "postgres",
        "SELECT table_name FROM information_schema.tables",
    ),
    Attack(
        "pg-catalog-in-subquery",
        "postgres",
        "SELECT id, (SELECT count(*) FROM pg_class) AS n FROM customers",
    ),
    Attack("pg-not-allowlisted", "postgres", "SELECT * FROM secrets"),
    Attack(
        "pg-not-allowlisted-join",
        "postgres",
        "SELECT c.id, s.api_key FROM customers c JOIN secrets s ON s.id = c.id",
    ),
    Attack(
        "pg-not-allowlisted-qualified",
        "postgres",
        "SELECT * FROM public.secrets WHERE id = $1",
        (1,),
    ),
    Attack(
        "pg-cte-name-shadowing",
        "postgres",
        "SELECT * FROM (WITH secrets AS (SELECT 1 AS id) SELECT id FROM secrets) AS a, secrets",
    ),
    Attack(
        "pg-cte-forward-reference",
        "postgres",
        "WITH a AS (SELECT * FROM secrets), secrets AS (SELECT 1 AS id) SELECT * FROM a",
    ),
    Attack("pg-copy-to-file", "postgres", "COPY customers TO '/tmp/leak.csv'"),
    Attack("pg-copy-program", "postgres", "COPY (SELECT 1) TO PROGRAM 'id'"),
    Attack("pg-do-block", "postgres", "DO $$BEGIN DELETE FROM orders; END$$"),
    Attack("pg-call", "postgres", "CALL refresh_everything()"),
    Attack("pg-prepare", "postgres", "PREPARE p AS DELETE FROM orders"),
    Attack("pg-execute", "postgres", "EXECUTE p"),
    Attack("pg-set-session", "postgres", "SET default_transaction_read_only = off"),
    Attack("pg-set-role", "postgres", "SET ROLE postgres"),
    Attack("pg-drop", "postgres", "DROP TABLE orders"),
    Attack("pg-truncate", "postgres", "TRUNCATE orders"),
    Attack("pg-create-table-as", "postgres", "CREATE TABLE stolen AS SELECT * FROM customers"),
    Attack("pg-grant", "postgres", "GRANT ALL ON orders TO PUBLIC"),
    Attack("pg-delete", "postgres", "DELETE FROM orders"),
    Attack("pg-update", "postgres", "UPDATE orders SET amount = 0"),
    Attack("pg-insert", "postgres", "INSERT INTO orders (customer_id) VALUES (1)"),
    Attack("pg-deep-nesting", "postgres", DEEPER_NESTING),
    Attack("pg-huge-literal", "postgres", HUGE_LITERAL),
    Attack(
        "pg-homoglyph-function",
        "postgres",
        "SELECT \u0455et_config('default_transaction_read_only', 'off', false)",
    ),
    Attack("pg-zero-width-function", "postgres", "SELECT pg_read\u200bfile('/etc/passwd')"),
    Attack("pg-fullwidth-semicolon", "postgres", "SELECT 1\uff1bDROP TABLE orders"),
    Attack(
        "pg-unicode-escaped-function",
        "postgres",
        "SELECT U&\"\\0070g_read_file\"('/etc/passwd')",
    ),
    Attack(
        "pg-bidi-override",
        "postgres",
        "SELECT id FROM customers WHERE name = '\u202e'; DROP TABLE orders; -- '\u202c",
    ),
    Attack(
        "pg-backslash-quote",
        "postgres",
        "SELECT 'a\\'; DROP TABLE orders; --' FROM customers",
    ),
]

MYSQL_ATTACKS = [
    Attack("my-stacked-drop", "mysql", "SELECT id FROM customers; DROP TABLE orders"),
    Attack("my-versioned-comment", "mysql", "SELECT id FROM customers /*! ; DROP TABLE orders */"),
    Attack("my-versioned-comment-sleep", "mysql", "SELECT /*!50000 SLEEP(10), */ id FROM orders"),
    Attack(
        "my-optimizer-hint",
        "mysql",
        "SELECT /*+ MAX_EXECUTION_TIME(0) */ id FROM orders",
    ),
    Attack("my-hash-comment", "mysql", "SELECT id FROM customers # \n; DELETE FROM orders"),
    Attack("my-load-file", "mysql", "SELECT LOAD_FILE('/etc/passwd')"),
    Attack(
        "my-load-file-in-union",
        "mysql",
        "SELECT name FROM customers UNION SELECT LOAD_FILE('/etc/passwd')",
    ),
    Attack("my-into-outfile", "mysql", "SELECT * FROM customers INTO OUTFILE '/tmp/leak'"),
    Attack("my-into-dumpfile", "mysql", "SELECT * FROM customers INTO DUMPFILE '/tmp/leak'"),
    Attack("my-into-variable", "mysql", "SELECT id INTO @x FROM customers"),
    Attack("my-sleep", "mysql", "SELECT SLEEP(10)"),
    Attack("my-sleep-in-where", "mysql", "SELECT id FROM orders WHERE id = 1 AND SLEEP(5) = 0"),
    Attack("my-benchmark", "mysql", "SELECT BENCHMARK(100000000, MD5('x'))"),
    Attack("my-get-lock", "mysql", "SELECT GET_LOCK('connector', 10)"),
    Attack("my-sys-exec", "mysql", "SELECT sys_exec('id')"),
    Attack("my-for-update", "mysql", "SELECT * FROM orders FOR UPDATE"),
    Attack("my-for-share-skip-locked", "mysql", "SELECT * FROM orders FOR SHARE SKIP LOCKED"),
    Attack("my-lock-in-share-mode", "mysql", "SELECT * FROM orders LOCK IN SHARE MODE"),
    Attack("my-mysql-user", "mysql", "SELECT user, authentication_string FROM mysql.user"),
    Attack("my-performance-schema", "mysql", "SELECT * FROM performance_schema.threads"),
    Attack("my-information-schema", "mysql", "SELECT * FROM information_schema.processlist"),
    Attack("my-sys-schema", "mysql", "SELECT * FROM sys.processlist"),
    Attack("my-user-variable-assignment", "mysql", "SELECT @a := id FROM customers"),
    Attack("my-system-variable", "mysql", "SELECT @@secure_file_priv"),
    Attack("my-set-global", "mysql", "SET GLOBAL general_log = 1"),
    Attack("my-load-data", "mysql", "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE orders"),
    Attack("my-handler", "mysql", "HANDLER orders OPEN"),
    Attack("my-do-sleep", "mysql", "DO SLEEP(5)"),
    Attack("my-call", "mysql", "CALL refresh_everything()"),
    Attack("my-prepare", "mysql", "PREPARE s FROM 'DROP TABLE orders'"),
    Attack("my-show-grants", "mysql", "SHOW GRANTS"),
    Attack("my-not-allowlisted", "mysql", "SELECT * FROM secrets"),
    Attack("my-other-database", "mysql", "SELECT * FROM otherdb.orders"),
    Attack("my-cte-delete", "mysql", "WITH x AS (DELETE FROM orders) SELECT 1"),
    Attack("my-delete", "mysql", "DELETE FROM orders"),
    Attack("my-replace", "mysql", "REPLACE INTO orders (id) VALUES (1)"),
    Attack("my-procedure-analyse", "mysql", "SELECT * FROM orders PROCEDURE ANALYSE()"),
    Attack("my-fullwidth-sleep", "mysql", "SELECT \uff33\uff2c\uff25\uff25\uff30(10)"),
    Attack("my-nul-byte", "mysql", "SELECT 1\x00; DROP TABLE orders"),
    Attack("my-huge-in-list", "mysql", HUGE_IN_LIST),
    Attack("my-deep-nesting", "mysql", DEEP_NESTING),
]

ATTACKS = POSTGRES_ATTACKS + MYSQL_ATTACKS


def _allowed_for(dialect: str) -> tuple[str, ...]:
    return ALLOWED_TABLES if dialect == "postgres" else MYSQL_ALLOWED_TABLES


def _check(attack: Attack) -> None:
    check_query(
        attack.sql,
        dialect=attack.dialect,  # type: ignore[arg-type]
        allowed_tables=_allowed_for(attack.dialect),
        default_schema=None if attack.dialect == "postgres" else "shop",
    )


def test_the_corpus_holds_forty_attacks_per_dialect_with_unique_ids() -> None:
    assert len(POSTGRES_ATTACKS) >= 40
    assert len(MYSQL_ATTACKS) >= 40
    assert len({attack.id for attack in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.id for attack in ATTACKS])
def test_every_attack_is_rejected_by_the_guard(attack: Attack) -> None:
    with pytest.raises(QueryRejectedError) as caught:
        _check(attack)
    assert caught.value.reason


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.id for attack in ATTACKS])
def test_a_rejection_never_quotes_the_query_text(attack: Attack) -> None:
    with pytest.raises(QueryRejectedError) as caught:
        _check(attack)
    reason = caught.value.reason
    assert "/etc/passwd" not in reason
    assert "DROP TABLE" not in reason.upper()
    assert len(reason) < 200
