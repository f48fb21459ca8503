"""Keyset pages of a pulled table: the SQL the cloud asks the connector to run, and the order
of cursor values.

A page reads rows in the order of the keyset columns (incremental: the cursor column, then the
key columns; full: the key columns) after a *position*:

- ``None``: from the first row;
- ``{"from": v}``: cursor column ≥ v (how an incremental execution starts: the job's cursor
  minus the overlap window, so a row committed late with an earlier cursor value, or a second
  row with the same cursor value, is read again rather than skipped);
- ``{"after": [v1, v2, …]}``: strictly after the last row stored, row-value comparison.

Rows whose cursor column is NULL are never read incrementally (they have no place in the
order); a full sync reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from hybrid.errors import ValidationFailedError

_IDENTIFIER = re.compile(r"[^\W\d]\w{0,62}")


class IdentifierError(ValidationFailedError):
    """A table or column name that is not a plain identifier."""


def check_identifier(name: str, *, what: str, qualified: bool = False) -> str:
    parts = name.split(".") if qualified else [name]
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise IdentifierError(
            f"{what} must be a plain identifier{' (optionally schema.table)' if qualified else ''}"
        )
    return name


def _quote(name: str, dialect: str) -> str:
    quote = '"' if dialect == "postgresql" else "`"
    return ".".join(f"{quote}{part}{quote}" for part in name.split("."))


@dataclass(frozen=True)
class PageQuery:
    sql: str
    params: list[Any]
    keyset: list[str]


def keyset_columns(mode: str, cursor_column: str | None, key_columns: list[str]) -> list[str]:
    if mode == "incremental":
        assert cursor_column is not None
        return [cursor_column, *[k for k in key_columns if k != cursor_column]]
    return list(key_columns)


def page_query(
    *,
    dialect: str,
    table: str,
    mode: str,
    cursor_column: str | None,
    key_columns: list[str],
    position: dict[str, Any] | None,
    limit: int,
) -> PageQuery:
    """The SELECT of one page of `limit` rows (PostgreSQL ``$n`` or MySQL ``?`` parameters).

    The SQL asks for one row more than the page: the connector stops at `limit` rows and,
    having seen the extra one, reports the page `truncated`, so the pull goes on. With
    ``LIMIT limit`` a page that ends exactly at the limit would look like the last one.
    """
    keyset = keyset_columns(mode, cursor_column, key_columns)
    quoted = [_quote(column, dialect) for column in keyset]
    params: list[Any] = []

    def placeholder(value: Any) -> str:
        params.append(value)
        return f"${len(params)}" if dialect == "postgresql" else "?"

    conditions: list[str] = []
    if mode == "incremental":
        conditions.append(f"{quoted[0]} IS NOT NULL")
    if position and "after" in position:
        values = list(position["after"])
        if len(values) != len(keyset):
            raise ValueError("the position does not match the keyset")
        if len(keyset) == 1:
            conditions.append(f"{quoted[0]} > {placeholder(values[0])}")
        else:
            marks = ", ".join(placeholder(value) for value in values)
            conditions.append(f"({', '.join(quoted)}) > ({marks})")
    elif position and "from" in position:
        conditions.append(f"{quoted[0]} >= {placeholder(position['from'])}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = (
        f"SELECT * FROM {_quote(table, dialect)}{where} "
        f"ORDER BY {', '.join(quoted)} LIMIT {int(limit) + 1}"
    )
    return PageQuery(sql=sql, params=params, keyset=keyset)


# --- ordering of cursor values ----------------------------------------------------------------


def _parse_time(value: str) -> datetime | None:
    if len(value) < 10 or not value[:4].isdigit() or value[4] != "-":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def value_key(value: Any) -> tuple[int, Any]:
    """A sort key that orders cursor values as the databases do for one column's type."""
    if value is None:
        return (3, 0)
    if isinstance(value, bool):
        return (1, Decimal(int(value)))
    if isinstance(value, int | float):
        return (1, Decimal(str(value)))
    if isinstance(value, str):
        moment = _parse_time(value)
        if moment is not None:
            return (0, moment)
        try:
            return (1, Decimal(value))
        except InvalidOperation:
            return (2, value)
    return (2, str(value))


def cursor_key(values: list[Any]) -> tuple[tuple[int, Any], ...]:
    return tuple(value_key(value) for value in values)


def later(a: list[Any] | None, b: list[Any] | None) -> list[Any] | None:
    """The later of two cursors (None is the earliest)."""
    if a is None:
        return b
    if b is None:
        return a
    try:
        return b if cursor_key(b) > cursor_key(a) else a
    except TypeError:  # values of different kinds: keep the newest
        return b


def overlap_start(cursor_value: Any, overlap_s: int) -> Any:
    """The cursor value `overlap_s` before `cursor_value`, in the value's own form."""
    if cursor_value is None or overlap_s <= 0:
        return cursor_value
    if isinstance(cursor_value, str):
        moment = _parse_time(cursor_value)
        if moment is not None:
            if len(cursor_value) == 10:  # a date
                days = -(-overlap_s // 86400)
                return (date.fromisoformat(cursor_value) - timedelta(days=days)).isoformat()
            start = moment - timedelta(seconds=overlap_s)
            naive = (
                "+" not in cursor_value[10:]
                and not cursor_value.endswith("Z")
                and ("-" not in cursor_value[10:])
            )
            return (start.replace(tzinfo=None) if naive else start).isoformat()
        return cursor_value
    if isinstance(cursor_value, int | float) and not isinstance(cursor_value, bool):
        return cursor_value - overlap_s
    return cursor_value


def timestamp_of(value: Any) -> datetime | None:
    """The cursor value as an aware time, when it is one (a record's `updated_at`)."""
    if isinstance(value, str):
        return _parse_time(value)
    return None
