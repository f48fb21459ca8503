"""The SQL guard accepts ordinary analytical queries and hands back SQL regenerated from the
parse tree: comments gone, identifiers quoted, placeholders in the dialect's native form.

`POSTGRES_QUERIES` also runs against a real PostgreSQL in
``tests/functional/connector/test_postgres_source.py``, where each must return what the
original text returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.sqlguard import (
    QueryRejectedError,
    check_query,
    mysql_pyformat,
    normalise_table_name,
)

TABLES = ("customers", "orders")


@dataclass(frozen=True)
class Allowed:
    sql: str
    params: tuple[object, ...] = ()
    # False where the result depends on the clock (now(), age()).
    deterministic: bool = True


SINCE = datetime(2024, 1, 1, tzinfo=timezone.utc)

POSTGRES_QUERIES = [
    Allowed("SELECT id, name FROM customers WHERE id = $1", (3,)),
    Allowed(
        "SELECT c.id, count(o.id) AS n, sum(o.amount) AS total FROM customers c "
        "LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id HAVING count(o.id) > $1 "
        "ORDER BY total DESC NULLS LAST, c.id LIMIT 10 OFFSET 5",
        (1,),
    ),
    Allowed(
        "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) "
        "SELECT customer_id, max(created_at) FROM recent GROUP BY customer_id",
        (SINCE,),
    ),
    Allowed(
        "WITH a AS (SELECT id FROM customers), b AS (SELECT id FROM a WHERE id > 1) SELECT * FROM b"
    ),
    Allowed(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) "
        "SELECT n FROM r"
    ),
    Allowed("SELECT id FROM customers UNION ALL SELECT customer_id FROM orders UNION SELECT 0"),
    Allowed("SELECT id FROM customers INTERSECT SELECT customer_id FROM orders EXCEPT SELECT 3"),
    Allowed(
        "SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY created_at DESC, id) "
        "AS rn, lag(amount) OVER w, sum(amount) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED "
        "PRECEDING AND CURRENT ROW) FROM orders WINDOW w AS (ORDER BY id)"
    ),
    Allowed(
        "SELECT id, rank() OVER (ORDER BY amount), dense_rank() OVER (ORDER BY amount), "
        "ntile(4) OVER (ORDER BY amount, id), first_value(id) OVER (ORDER BY id), "
        "percent_rank() OVER (ORDER BY id) FROM orders"
    ),
    Allowed(
        "SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM customers c "
        "WHERE c.id = o.customer_id) AND o.status IN ('new', 'paid') "
        "AND o.amount BETWEEN $1 AND $2",
        (10, 500),
    ),
    Allowed(
        "SELECT * FROM orders WHERE customer_id = ANY($1) "
        "AND id NOT IN (SELECT id FROM orders WHERE amount IS NULL)",
        ([1, 2, 3],),
    ),
    Allowed(
        "SELECT coalesce(name, 'n/a'), nullif(email, ''), CASE WHEN amount > 100 THEN 'big' "
        "WHEN amount > 10 THEN 'mid' ELSE 'small' END, greatest(1, 2), least(3, 4) "
        "FROM customers JOIN orders ON orders.customer_id = customers.id"
    ),
    Allowed(
        "SELECT lower(name), upper(email), length(name), substring(email FROM 1 FOR 3), "
        "trim(name), name || '-' || email, concat(name, email), replace(email, 'a', 'b'), "
        "left(email, 2), right(email, 2), position('a' IN email), split_part(email, '@', 2), "
        "initcap(email), md5(email) FROM customers"
    ),
    Allowed(
        "SELECT CAST(amount AS numeric(12, 2)), amount::text, created_at::date, id::bigint, "
        "'2024-01-01'::timestamptz, CAST($1 AS integer) FROM orders",
        ("42",),
    ),
    Allowed(
        "SELECT date_trunc('month', created_at), extract(year FROM created_at), "
        "created_at + interval '1 day', to_char(created_at, 'YYYY-MM'), "
        "date_part('dow', created_at) FROM orders"
    ),
    Allowed(
        "SELECT now() > created_at, current_date, age(created_at) FROM orders",
        deterministic=False,
    ),
    Allowed(
        "SELECT abs(amount), round(amount, 1), ceil(amount), floor(amount), id % 3, "
        "power(2, 3), sqrt(4.0), mod(id, 2) FROM orders"
    ),
    Allowed(
        "SELECT count(*) FILTER (WHERE amount > 10), avg(amount), min(amount), max(amount), "
        "string_agg(status, ',' ORDER BY status), array_agg(id ORDER BY id), "
        "bool_and(amount > 0), stddev(amount) FROM orders"
    ),
    Allowed("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM orders"),
    Allowed(
        "SELECT DISTINCT ON (customer_id) customer_id, id FROM orders "
        "ORDER BY customer_id, created_at DESC, id"
    ),
    Allowed("SELECT DISTINCT status FROM orders"),
    Allowed("SELECT n FROM generate_series(1, 10) AS g(n)"),
    Allowed("SELECT x FROM unnest($1::int[]) AS u(x)", ([1, 2, 3],)),
    Allowed("SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, label)"),
    Allowed(
        "SELECT o.id, x.cnt FROM orders o, LATERAL (SELECT count(*) AS cnt FROM orders i "
        "WHERE i.customer_id = o.customer_id) x"
    ),
    Allowed(
        "SELECT payload->>'k', payload->'a', payload #>> '{a,b}', payload ? 'k', "
        "payload @> '{\"k\": 1}' FROM orders"
    ),
    Allowed(
        "SELECT jsonb_build_object('id', id), to_jsonb(name), json_agg(id) "
        "FROM customers GROUP BY id, name"
    ),
    Allowed(
        "SELECT name FROM customers WHERE email ILIKE $1 OR name LIKE '张%' OR email ~ '^b' "
        "OR email SIMILAR TO 'c%'",
        ("%1@%",),
    ),
    Allowed("SELECT * FROM public.customers WHERE id = $1 OR id = $2", (1, 2)),
    Allowed("SELECT id FROM orders ORDER BY id FETCH FIRST 5 ROWS ONLY"),
    Allowed("SELECT 'it''s', E'tab\\there', $$dollar 'quoted'$$, U&'d\\0061t', 'back\\slash' AS s"),
    Allowed('SELECT "Mixed Case".id FROM customers AS "Mixed Case"'),
    Allowed("SELECT tags[1], tags[1:2], array_length(tags, 1), cardinality(tags) FROM orders"),
    Allowed(
        "SELECT id IS DISTINCT FROM $1, id IS NOT NULL, NOT (id > 1), -id, amount / 2, "
        "amount * 2 FROM orders",
        (5,),
    ),
    Allowed("TABLE customers"),
    Allowed("SELECT 1"),
    Allowed("(SELECT id FROM customers ORDER BY id LIMIT 1)"),
    Allowed(
        "SELECT a.n * b.n FROM generate_series(1, 10) a(n) CROSS JOIN generate_series(1, 10) b(n)"
    ),
    Allowed("SELECT id FROM customers c WHERE c.email = 'c1@example.cn' -- trailing comment"),
    Allowed("SELECT /* inline */ id FROM customers"),
    Allowed("SELECT 姓名 FROM customers WHERE 姓名 = $1", ("张三",)),
]

MYSQL_QUERIES = [
    "SELECT id, name FROM customers WHERE id = ?",
    "SELECT c.id, COUNT(o.id) AS n, SUM(o.amount) FROM customers c LEFT JOIN orders o "
    "ON o.customer_id = c.id GROUP BY c.id HAVING COUNT(o.id) > ? ORDER BY n DESC "
    "LIMIT 10 OFFSET 5",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > ?) "
    "SELECT customer_id, MAX(created_at) FROM recent GROUP BY customer_id",
    "WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT n FROM r",
    "SELECT id FROM customers UNION ALL SELECT customer_id FROM orders",
    "SELECT id, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY created_at DESC) AS rn, "
    "LAG(amount) OVER (ORDER BY id), RANK() OVER (ORDER BY amount) FROM orders",
    "SELECT IFNULL(name, 'n/a'), COALESCE(email, ''), IF(amount > 10, 'big', 'small'), "
    "CASE status WHEN 'new' THEN 1 ELSE 0 END FROM customers "
    "JOIN orders ON orders.customer_id = customers.id",
    "SELECT CONCAT(name, '-', email), CONCAT_WS(',', name, email), LOWER(name), UPPER(name), "
    "CHAR_LENGTH(name), LENGTH(name), SUBSTRING(name, 1, 3), TRIM(name), "
    "REPLACE(name, 'a', 'b'), LEFT(name, 2), LOCATE('a', name), "
    "SUBSTRING_INDEX(email, '@', -1) FROM customers",
    "SELECT DATE_FORMAT(created_at, '%Y-%m'), DATE(created_at), YEAR(created_at), "
    "MONTH(created_at), DATE_ADD(created_at, INTERVAL 1 DAY), DATEDIFF(NOW(), created_at), "
    "TIMESTAMPDIFF(HOUR, created_at, NOW()), UNIX_TIMESTAMP(created_at), CURDATE() FROM orders",
    "SELECT CAST(amount AS DECIMAL(12, 2)), CAST(id AS CHAR), CAST(? AS SIGNED), "
    "ROUND(amount, 1), ABS(amount), FLOOR(amount), CEIL(amount), amount MOD 3, amount % 3 "
    "FROM orders",
    "SELECT GROUP_CONCAT(status ORDER BY status SEPARATOR ','), AVG(amount), "
    "COUNT(DISTINCT customer_id) FROM orders",
    "SELECT JSON_EXTRACT(payload, '$.k'), JSON_UNQUOTE(JSON_EXTRACT(payload, '$.a')) FROM orders",
    "SELECT * FROM orders WHERE status IN ('new', 'paid') AND amount BETWEEN ? AND ? "
    "AND status LIKE '50%'",
    "SELECT `id`, `name` FROM `shop`.`customers` WHERE `id` <=> ?",
    "SELECT * FROM (SELECT id FROM customers) AS sub WHERE id > 1",
    "SELECT 'it''s', 'back\\\\slash', 'it\\'s' AS s",
]


def pg(sql: str, **kwargs: object) -> str:
    return check_query(sql, dialect="postgres", **kwargs).sql  # type: ignore[arg-type]


@pytest.mark.parametrize("query", POSTGRES_QUERIES, ids=lambda q: q.sql[:50])
def test_ordinary_postgres_queries_pass_and_count_their_parameters(query: Allowed) -> None:
    guarded = check_query(query.sql, dialect="postgres", allowed_tables=TABLES)
    assert guarded.param_count == len(query.params)
    assert guarded.tables <= {"public.customers", "public.orders"}
    again = check_query(guarded.sql, dialect="postgres", allowed_tables=TABLES)
    assert again.sql == guarded.sql


@pytest.mark.parametrize("sql", MYSQL_QUERIES, ids=lambda sql: sql[:50])
def test_ordinary_mysql_queries_pass(sql: str) -> None:
    guarded = check_query(
        sql,
        dialect="mysql",
        allowed_tables=("shop.customers", "shop.orders"),
        default_schema="shop",
    )
    assert guarded.param_count == sql.count("?")
    assert guarded.tables <= {"shop.customers", "shop.orders"}


def test_the_sql_sent_is_regenerated_without_comments_and_with_quoted_identifiers() -> None:
    sql = pg("SELECT /* who */ id, Name FROM Customers -- trailing\nWHERE id = $1")
    assert sql == 'SELECT "id", "name" FROM "customers" WHERE "id" = $1'


def test_quoted_identifiers_keep_their_case_and_unquoted_ones_fold() -> None:
    guarded = check_query('SELECT "Id" FROM "Sales"."Orders", ORDERS', dialect="postgres")
    assert guarded.tables == {"Sales.Orders", "public.orders"}
    assert '"Sales"."Orders"' in guarded.sql


def test_mysql_regeneration_uses_backticks_and_keeps_the_question_mark() -> None:
    guarded = check_query("SELECT id FROM customers WHERE name = ? -- x", dialect="mysql")
    assert guarded.sql == "SELECT `id` FROM `customers` WHERE `name` = ?"
    assert guarded.tables == {"customers"}


def test_cte_names_are_not_tables_but_what_they_read_is() -> None:
    guarded = check_query(
        "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN customers ON true",
        dialect="postgres",
    )
    assert guarded.tables == {"public.orders", "public.customers"}


def test_a_cte_is_not_visible_outside_the_subquery_that_defines_it() -> None:
    with pytest.raises(QueryRejectedError, match=r"public\.recent"):
        check_query(
            "SELECT * FROM (WITH recent AS (SELECT 1) SELECT * FROM recent) a, recent",
            dialect="postgres",
            allowed_tables=TABLES,
        )


def test_recursive_ctes_may_reference_themselves() -> None:
    guarded = check_query(
        "WITH RECURSIVE walk AS (SELECT id FROM customers UNION ALL "
        "SELECT w.id + 1 FROM walk w WHERE w.id < 3) SELECT * FROM walk",
        dialect="postgres",
        allowed_tables=TABLES,
    )
    assert guarded.tables == {"public.customers"}


def test_allowed_tables_accept_qualified_and_unqualified_names() -> None:
    for allowed in (["orders"], ["public.orders"], ['"public"."orders"'], ["PUBLIC.ORDERS"]):
        check_query("SELECT * FROM public.orders", dialect="postgres", allowed_tables=allowed)
        check_query("SELECT * FROM orders", dialect="postgres", allowed_tables=allowed)


def test_a_table_in_another_schema_needs_its_own_entry() -> None:
    with pytest.raises(QueryRejectedError, match=r"erp\.orders"):
        check_query("SELECT * FROM erp.orders", dialect="postgres", allowed_tables=["orders"])
    check_query(
        "SELECT * FROM orders",
        dialect="postgres",
        default_schema="erp",
        allowed_tables=["erp.orders"],
    )


def test_without_an_allowlist_any_non_system_table_passes() -> None:
    assert check_query("SELECT * FROM anything", dialect="postgres").tables == {"public.anything"}


def test_normalised_table_names_match_the_guard() -> None:
    assert normalise_table_name("Orders", dialect="postgres") == "public.orders"
    assert normalise_table_name('"Erp"."Orders"', dialect="postgres") == "Erp.Orders"
    assert normalise_table_name("orders", dialect="mysql", default_schema="shop") == "shop.orders"
    with pytest.raises(ValueError, match="not a table name"):
        normalise_table_name("orders; DROP TABLE x", dialect="postgres")


@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("SELECT $1", 1),
        ("SELECT $1, $2, $1", 2),
        ("SELECT * FROM orders WHERE id = $2 OR id = $1", 2),
        ("SELECT '$1' AS text_not_a_parameter", 0),
    ],
)
def test_postgres_takes_numbered_placeholders(sql: str, count: int) -> None:
    assert check_query(sql, dialect="postgres").param_count == count


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT $2", "without gaps"),
        ("SELECT $1, $3", "without gaps"),
        ("SELECT %s", "placeholders must be written"),
        ("SELECT ?", "placeholders must be written"),
        ("SELECT :name", "placeholders must be written"),
        ("SELECT $0", "numbered"),
        ("SELECT $1001", "numbered"),
    ],
)
def test_postgres_refuses_other_placeholder_forms(sql: str, reason: str) -> None:
    with pytest.raises(QueryRejectedError, match=reason):
        check_query(sql, dialect="postgres")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT :name", "placeholders must be written"),
        ("SELECT @name", "user variables"),
        ("SELECT %s", "does not parse"),
    ],
)
def test_mysql_refuses_other_placeholder_forms(sql: str, reason: str) -> None:
    with pytest.raises(QueryRejectedError, match=reason):
        check_query(sql, dialect="mysql")


def test_mysql_pyformat_binds_question_marks_and_escapes_percent_signs() -> None:
    guarded = check_query(
        "SELECT id FROM orders WHERE status LIKE '50%' AND note = 'why?' AND id = ? "
        "AND amount % 2 = ?",
        dialect="mysql",
    )
    assert guarded.param_count == 2
    formatted = mysql_pyformat(guarded.sql)
    assert formatted == (
        "SELECT `id` FROM `orders` WHERE `status` LIKE '50%%' AND `note` = 'why?' "
        "AND `id` = %s AND `amount` %% 2 = %s"
    )
    assert formatted % ("1", "0") == (
        "SELECT `id` FROM `orders` WHERE `status` LIKE '50%' AND `note` = 'why?' "
        "AND `id` = 1 AND `amount` % 2 = 0"
    )


def test_the_length_limit_is_configurable() -> None:
    sql = "SELECT id FROM customers WHERE id = 1"
    with pytest.raises(QueryRejectedError, match="longer than 10"):
        check_query(sql, dialect="postgres", max_length=10)
    check_query(sql, dialect="postgres", max_length=len(sql))


@pytest.mark.parametrize("sql", ["", "   ", ";", "-- nothing\n", "/* nothing */"])
def test_an_empty_query_is_rejected(sql: str) -> None:
    with pytest.raises(QueryRejectedError):
        check_query(sql, dialect="postgres")


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_deep_nesting_within_the_length_limit_is_rejected_cleanly(dialect: str) -> None:
    with pytest.raises(QueryRejectedError, match="nested too deeply"):
        check_query("SELECT " + "(" * 2_000 + "1" + ")" * 2_000, dialect=dialect)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM customers JOIN 13800138000",
        "SELECT name FROM customers WHERE phone = '13800138000",
        "SELECT * FROM customers WHERE phone = '13800138000' AND",
    ],
)
def test_a_parse_error_never_quotes_a_literal(sql: str) -> None:
    with pytest.raises(QueryRejectedError) as caught:
        check_query(sql, dialect="postgres")
    assert "13800138000" not in caught.value.reason


def test_an_unknown_dialect_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="dialect"):
        check_query("SELECT 1", dialect="sqlite")  # type: ignore[arg-type]


def test_chinese_identifiers_and_literals_are_ordinary_text() -> None:
    guarded = check_query("SELECT 姓名 FROM 客户 WHERE 城市 = '北京　朝阳'", dialect="postgres")
    assert guarded.tables == {"public.客户"}
    assert "'北京　朝阳'" in guarded.sql


def test_repeat_and_user_defined_types_are_not_allowed() -> None:
    with pytest.raises(QueryRejectedError, match="repeat"):
        check_query("SELECT repeat('x', 1000000000)", dialect="postgres")
    with pytest.raises(QueryRejectedError, match="type not allowed"):
        check_query("SELECT CAST(x AS my_type) FROM orders", dialect="postgres")
    with pytest.raises(QueryRejectedError):
        check_query("SELECT 'pg_authid'::regclass", dialect="postgres")


TOKENS = [
    *"SELECT FROM WHERE ; ' ` ( ) , . * $ ? % @ # - / 0 1 a b".split(" "),  # noqa: SIM905
    *['"', "\\", "\n", " ", "/*", "*/", "--", "/*!", "pg_", "INTO", "UNION", "set_config"],
    *["orders", "id", "\u200b", "；", "$1", "$$", "E'", "U&"],
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(TOKENS), max_size=40).map("".join),
    st.sampled_from(["postgres", "mysql"]),
)
def test_any_text_is_either_rejected_or_regenerated_stably(text: str, dialect: str) -> None:
    try:
        guarded = check_query(text, dialect=dialect)  # type: ignore[arg-type]
    except QueryRejectedError:
        return
    again = check_query(guarded.sql, dialect=dialect)  # type: ignore[arg-type]
    assert again.sql == guarded.sql
    assert again.tables == guarded.tables


@pytest.mark.parametrize(
    "sql", ["SELECT payload->>'$.k' FROM orders", "SELECT id FROM orders WHERE payload->>'$.a' = 1"]
)
def test_json_arrows_are_refused_for_mysql_because_mariadb_lacks_them(sql: str) -> None:
    with pytest.raises(QueryRejectedError, match="JSON_EXTRACT"):
        check_query(sql, dialect="mysql")


def test_portable_json_spellings_pass_for_mysql() -> None:
    # sqlglot regenerates ``->`` as JSON_EXTRACT, which MariaDB runs; a quoted arrow is text.
    assert check_query("SELECT id FROM orders WHERE payload->'$.a' = 1", dialect="mysql").sql == (
        "SELECT `id` FROM `orders` WHERE JSON_EXTRACT(`payload`, '$.a') = 1"
    )
    assert check_query("SELECT '->>' AS a FROM orders", dialect="mysql").sql
