"""Customer databases the connector reads, each behind the same small interface.

A source runs one guarded, read-only query at a time per connection and streams its rows;
`self_test` runs at startup and raises `UnsafeSourceError` when the database role could write
(the connector must then refuse to start). Errors are in `connector.sources.errors`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Rows(Iterator[dict[str, Any]], Protocol):
    """One query's rows as dicts; see `connector.sources.streaming.RowStream`."""

    columns: tuple[str, ...]
    row_count: int
    byte_count: int
    truncated: bool

    def close(self) -> None: ...


@dataclass(frozen=True)
class SelfTestReport:
    """What a startup self-test checked, and findings that are advice rather than danger."""

    checks: tuple[str, ...]
    warnings: tuple[str, ...]


class Source(Protocol):
    """What the connector needs from a database (PostgreSQL now, MySQL next)."""

    dialect: str

    def query(
        self, sql: str, params: Sequence[Any] = (), *, max_rows: int | None = None
    ) -> Rows: ...

    def ping(self) -> float: ...

    def self_test(self) -> SelfTestReport: ...

    def close(self) -> None: ...
