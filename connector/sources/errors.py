"""Errors of the data sources. Messages carry SQLSTATEs, table and role names, never SQL
parameters or row values; driver exceptions never cross this boundary."""

from __future__ import annotations

from typing import Literal

from connector.sqlguard import QueryRejectedError

LimitKind = Literal["bytes", "time"]


class SourceError(Exception):
    """Base of the source errors."""


class SourceUnavailableError(SourceError):
    """The database cannot be reached, refused the login, or the connection dropped."""


class QueryFailedError(SourceError):
    """The database refused or failed the query.

    `sqlstate` is PostgreSQL's (or MySQL's) error code when the server gave one. The server's
    message is kept only for error classes whose messages never quote data (syntax, access,
    read-only transaction, limits); others, such as ``invalid input syntax for type integer:
    "<value>"``, are reduced to their code.
    """

    def __init__(self, sqlstate: str | None, message: str) -> None:
        super().__init__(f"query failed ({sqlstate}): {message}" if sqlstate else message)
        self.sqlstate = sqlstate
        self.message = message


class LimitExceededError(SourceError):
    """The result outgrew a cap (bytes or server time); the rows sent so far are incomplete."""

    def __init__(self, kind: LimitKind, limit: int) -> None:
        unit = {"bytes": "bytes", "time": "ms"}[kind]
        super().__init__(f"query exceeded its {kind} limit of {limit} {unit}")
        self.kind = kind
        self.limit = limit


class PlanRejectedError(QueryRejectedError):
    """The server's own plan of the query reads a system relation or function: the
    database-side check behind the SQL guard, so a parser mistake alone cannot expose them."""


class UnsafeSourceError(SourceError):
    """The startup self-test found the database role able to write or reach beyond the
    allowlist; the connector must refuse to start. `problems` lists each finding."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        super().__init__("the source is not read-only: " + "; ".join(problems))
        self.problems = problems
