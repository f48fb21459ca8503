"""Query fingerprints (what counts as the same query) and the cached payload's form."""

from __future__ import annotations

import json

import pytest

from hybrid.hotcache.fingerprint import dialect_of, fingerprint, normalise_sql
from hybrid.hotcache.payload import compress, decompress, encode, response_body


def _fp(sql: str, params: list | None = None, *, dialect: str = "postgres", **kw: str) -> str:
    return fingerprint(
        kw.get("connector", "con_1"),
        kw.get("source", "erp"),
        normalise_sql(sql, dialect),
        params or [],
    )


def test_spelling_whitespace_case_and_comments_do_not_change_a_postgres_fingerprint() -> None:
    base = _fp("SELECT id, name FROM people WHERE id <= $1 ORDER BY id", [5])
    assert base == _fp("select ID,name\n  from PEOPLE -- who\n where id<=$1 order by id", [5])
    assert base == _fp("SELECT id, name FROM people /* c */ WHERE id <= $1 ORDER BY id", [5])


@pytest.mark.parametrize(
    ("other", "params", "kw"),
    [
        ("SELECT id, name FROM people WHERE id <= $1 ORDER BY id", [6], {}),
        ("SELECT id, name FROM people WHERE id <= $1 ORDER BY id", ["5"], {}),
        ("SELECT id, name FROM people WHERE id <= $1 ORDER BY id", [5.0], {}),
        ("SELECT id, name FROM people WHERE id <= $1 ORDER BY id", [True], {}),
        ("SELECT id, name FROM people WHERE id < $1 ORDER BY id", [5], {}),
        ('SELECT id, name FROM "People" WHERE id <= $1 ORDER BY id', [5], {}),
        ("SELECT id, name FROM people WHERE id <= $1 ORDER BY id", [5], {"connector": "con_2"}),
        ("SELECT id, name FROM people WHERE id <= $1 ORDER BY id", [5], {"source": "crm"}),
    ],
)
def test_anything_that_can_change_the_result_changes_the_fingerprint(
    other: str, params: list, kw: dict
) -> None:
    base = _fp("SELECT id, name FROM people WHERE id <= $1 ORDER BY id", [5])
    assert _fp(other, params, **kw) != base


def test_mysql_table_names_keep_their_case() -> None:
    lower = _fp("SELECT id FROM people", dialect="mysql")
    assert lower == _fp("select  id  from people", dialect="mysql")
    assert lower != _fp("SELECT id FROM People", dialect="mysql")
    assert dialect_of("mysql") == "mysql"
    assert dialect_of("postgresql") == "postgres"


def test_sql_sqlglot_cannot_parse_still_gets_a_stable_fingerprint() -> None:
    broken = "SELECT FROM WHERE ((("
    assert normalise_sql(broken, "postgres").startswith("raw:")
    assert _fp(broken) == _fp("SELECT   FROM WHERE (((")
    assert len(_fp(broken)) == 32


def test_non_finite_parameters_have_no_fingerprint() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        fingerprint("c", "s", "SELECT 1", [float("nan")])


def test_the_payload_round_trips_and_a_hit_body_is_spliced_without_reparsing() -> None:
    rows = [{"id": 1, "name": "张*", "amount": "1.50"}, {"id": 2, "name": None, "amount": None}]
    plain, encoded = encode(["id", "name", "amount"], rows)
    assert decompress(encoded.compressed) == plain
    assert encoded.row_count == 2
    _again, same = encode(["id", "name", "amount"], [dict(r) for r in rows])
    assert same.content_hash == encoded.content_hash
    _changed, other = encode(["id", "name", "amount"], [rows[0]])
    assert other.content_hash != encoded.content_hash
    body = json.loads(response_body(plain, {"cached_at": "2026-11-23T00:00:00Z", "w": [1]}))
    assert body == {
        "columns": ["id", "name", "amount"],
        "rows": rows,
        "row_count": 2,
        "cached_at": "2026-11-23T00:00:00Z",
        "w": [1],
    }
    assert decompress(compress(b"x" * 10_000)) == b"x" * 10_000
