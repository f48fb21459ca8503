"""The identity of a query: its SQL normalised by sqlglot (keywords, identifier case,
whitespace and comments no longer matter) plus its parameters, connector and source.

sqlglot is imported on first use and normalisations are memoised per instance, so a warm
instance pays for parsing a hot query once.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

FINGERPRINT_VERSION = "qf1"
# Normalisations of SQL longer than this are not memoised (they would crowd the memo).
_MEMO_MAX_SQL = 4096
_DIALECTS = {"postgresql": "postgres", "mysql": "mysql"}


def dialect_of(engine: str) -> str:
    """sqlglot's dialect for a source engine (PostgreSQL unless it is MySQL)."""
    return _DIALECTS.get(engine, "postgres")


def normalise_sql(sql: str, dialect: str) -> str:
    """One canonical text per query; SQL sqlglot cannot parse keeps its own text with
    whitespace collapsed (the connector's guard decides whether it runs at all)."""
    if len(sql) <= _MEMO_MAX_SQL:
        return _normalise_memo(sql, dialect)
    return _normalise(sql, dialect)


@functools.lru_cache(maxsize=2048)
def _normalise_memo(sql: str, dialect: str) -> str:
    return _normalise(sql, dialect)


def _normalise(sql: str, dialect: str) -> str:
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        statements = sqlglot.parse(sql, read=dialect)
    except (SqlglotError, ValueError, RecursionError):
        return "raw:" + " ".join(sql.split())
    # PostgreSQL folds unquoted identifiers to lower case; MySQL table names may be case
    # sensitive, so there they keep their case (two spellings then miss each other's entry,
    # which is safe; one entry for two different tables would not be).
    fold = dialect == "postgres"
    parts = [s.sql(dialect=dialect, normalize=fold, comments=False) for s in statements if s]
    if not parts:
        return "raw:" + " ".join(sql.split())
    return ";\n".join(parts)


def fingerprint(connector_id: str, source: str, normalised: str, params: Sequence[Any]) -> str:
    """32 hex characters naming (connector, source, normalised SQL, parameters)."""
    canonical = json.dumps(
        [FINGERPRINT_VERSION, connector_id, source, normalised, list(params)],
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
