"""Keyset pages: the SQL of each page in both dialects, the order of cursor values and the
overlap window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid.sync.keyset import (
    IdentifierError,
    check_identifier,
    cursor_key,
    later,
    overlap_start,
    page_query,
)


def _page(dialect: str, position, mode: str = "incremental"):
    return page_query(
        dialect=dialect,
        table="sales.orders",
        mode=mode,
        cursor_column="updated_at",
        key_columns=["region", "id"],
        position=position,
        limit=500,
    )


def test_pages_in_postgresql_quote_names_and_bind_values():
    first = _page("postgresql", None)
    assert first.sql == (
        'SELECT * FROM "sales"."orders" WHERE "updated_at" IS NOT NULL '
        'ORDER BY "updated_at", "region", "id" LIMIT 501'
    )
    assert first.params == []
    start = _page("postgresql", {"from": "2026-01-01T00:00:00+00:00"})
    assert start.sql.endswith('"updated_at" >= $1 ORDER BY "updated_at", "region", "id" LIMIT 501')
    assert start.params == ["2026-01-01T00:00:00+00:00"]
    after = _page("postgresql", {"after": ["2026-01-01T00:00:00+00:00", "north", 7]})
    assert '("updated_at", "region", "id") > ($1, $2, $3)' in after.sql
    assert after.params == ["2026-01-01T00:00:00+00:00", "north", 7]
    assert after.keyset == ["updated_at", "region", "id"]


def test_pages_in_mysql_use_backticks_and_question_marks():
    after = _page("mysql", {"after": ["2026-01-01 00:00:00", "north", 7]})
    assert after.sql == (
        "SELECT * FROM `sales`.`orders` WHERE `updated_at` IS NOT NULL AND "
        "(`updated_at`, `region`, `id`) > (?, ?, ?) ORDER BY `updated_at`, `region`, `id` LIMIT 501"
    )


def test_a_full_sync_orders_by_the_keys_alone_and_reads_null_cursors():
    full = _page("postgresql", {"after": ["north", 7]}, mode="full")
    assert full.sql == (
        'SELECT * FROM "sales"."orders" WHERE ("region", "id") > ($1, $2) '
        'ORDER BY "region", "id" LIMIT 501'
    )


def test_every_page_passes_the_connector_sql_guard():
    from connector.sqlguard import check_query

    for dialect, guard in (("postgresql", "postgres"), ("mysql", "mysql")):
        for position in (None, {"from": 1}, {"after": [1, "n", 2]}):
            page = _page(dialect, position)
            checked = check_query(page.sql, dialect=guard, allowed_tables={"sales.orders"})
            assert checked.param_count == len(page.params)


@pytest.mark.parametrize("name", ["a b", "x;y", "1abc", "a.b.c", '"q"', "", "a" * 64])
def test_identifiers_must_be_plain(name):
    with pytest.raises(IdentifierError):
        check_identifier(name, what="table", qualified=True)


def test_cursor_values_order_as_their_types_do():
    assert later(["2026-01-01T00:00:00+08:00"], ["2025-12-31T17:00:00+00:00"]) == [
        "2025-12-31T17:00:00+00:00"
    ]
    assert later([9], [10]) == [10]
    assert later(["9.5"], ["10"]) == ["10"]
    assert later(None, ["a"]) == ["a"]
    assert later(["b"], ["a"]) == ["b"]


@given(
    st.lists(st.integers(), min_size=1, max_size=3), st.lists(st.integers(), min_size=1, max_size=3)
)
def test_later_is_the_maximum_of_integer_cursors(a, b):
    if len(a) != len(b):
        return
    assert cursor_key(later(a, b)) == max(cursor_key(a), cursor_key(b))


def test_the_overlap_window_steps_back_in_the_cursor_own_form():
    assert overlap_start("2026-01-01T00:01:00+00:00", 60) == "2026-01-01T00:00:00+00:00"
    assert overlap_start("2026-01-01T00:01:00", 90) == "2025-12-31T23:59:30"
    assert overlap_start("2026-01-02", 60) == "2026-01-01"
    assert overlap_start(1000, 60) == 940
    assert overlap_start("abc", 60) == "abc"
    assert overlap_start("2026-01-01T00:01:00Z", 0) == "2026-01-01T00:01:00Z"
