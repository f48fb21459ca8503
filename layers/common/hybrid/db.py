"""PostgreSQL through pg8000: one connection reused across warm invocations, reconnected
after it drops, with explicit transactions.

pg8000's native interface takes named parameters (`:name`) and always uses the extended
protocol when parameters are given, so one call is one statement.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from hybrid import log

if TYPE_CHECKING:
    import pg8000.native

CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_MS = 30_000
UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
SERIALIZATION_FAILURE = "40001"


class DatabaseError(Exception):
    """Base of the database errors; messages never contain SQL parameters or credentials."""


class DatabaseUnavailableError(DatabaseError):
    """The server cannot be reached or the connection dropped (retry later: 503)."""


class IntegrityError(DatabaseError):
    def __init__(self, code: str, constraint: str | None) -> None:
        super().__init__(f"integrity violation {code} on {constraint or 'unknown constraint'}")
        self.code = code
        self.constraint = constraint


class QueryError(DatabaseError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"query failed ({code}): {message}")
        self.code = code


class DataError(QueryError):
    """SQLSTATE class 22: a value PostgreSQL cannot store (NUL in text, a date out of range,
    a number too large). Caused by input the validation let through; the transaction is
    rolled back, so nothing is partially written."""


@dataclass(frozen=True)
class ConnectionParams:
    user: str
    password: str | None
    host: str | None
    port: int
    database: str
    unix_sock: str | None
    ssl: bool

    @classmethod
    def from_url(cls, url: str) -> ConnectionParams:
        parts = urlsplit(url)
        if parts.scheme not in {"postgresql", "postgres", "postgresql+pg8000"}:
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        query = parse_qs(parts.query)
        socket_dir = query.get("host", [None])[0]
        port = parts.port or 5432
        return cls(
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname,
            port=port,
            database=unquote(parts.path.lstrip("/")) or "postgres",
            unix_sock=f"{socket_dir}/.s.PGSQL.{port}" if socket_dir else None,
            ssl=query.get("sslmode", ["disable"])[0] in {"require", "verify-ca", "verify-full"},
        )


class Transaction:
    """Statements inside one transaction; rows come back as dicts."""

    def __init__(self, connection: pg8000.native.Connection) -> None:
        self._con = connection

    def execute(self, sql: str, **params: Any) -> int:
        """Run a statement; the number of rows it affected."""
        self._run(sql, params)
        return int(self._con.row_count)

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        rows = self._run(sql, params) or []
        names = [column["name"] for column in (self._con.columns or [])]
        return [dict(zip(names, row, strict=False)) for row in rows]

    def one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        found = self.rows(sql, **params)
        return found[0] if found else None

    def scalar(self, sql: str, **params: Any) -> Any:
        rows = self._run(sql, params) or []
        return rows[0][0] if rows else None

    def copy_in(self, sql: str, stream: Iterable[bytes]) -> int:
        """Run `COPY … FROM STDIN` with data in COPY's format; the number of rows copied.

        pg8000 sends each item of `stream` as one CopyData message: give it large chunks.
        """
        _translate(lambda: self._con.run(sql, stream=stream))
        return int(self._con.row_count)

    def _run(self, sql: str, params: dict[str, Any]) -> list[list[Any]] | None:
        rows: list[list[Any]] | None = _translate(lambda: self._con.run(sql, **params))
        return rows


class Database:
    """A lazily opened connection, shared by the invocations of one warm instance.

    SCF runs one invocation at a time per instance; the lock keeps the emulator's and the
    tests' threads from interleaving statements on the one connection.
    """

    def __init__(self, url: str, *, application_name: str = "hybrid") -> None:
        self._params = ConnectionParams.from_url(url)
        self._application_name = application_name
        self._connection: pg8000.native.Connection | None = None
        self._lock = threading.RLock()
        self._logger = log.get_logger("hybrid.db")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """BEGIN … COMMIT; ROLLBACK on any error. A dropped connection is reopened once at
        BEGIN (nothing has been sent yet); a drop mid-transaction raises
        DatabaseUnavailableError and the next transaction reconnects."""
        with self._lock:
            connection = self._begin()
            try:
                yield Transaction(connection)
                _translate(lambda: connection.run("COMMIT"))
            except BaseException:
                self._rollback(connection)
                raise

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                try:
                    connection.close()
                except Exception as exc:  # noqa: BLE001 - closing a dead socket may fail
                    self._logger.debug("close failed", error_type=type(exc).__name__)

    def _begin(self) -> pg8000.native.Connection:
        for attempt in (1, 2):
            connection = self._connect()
            try:
                _translate(lambda con=connection: con.run("BEGIN"))
                return connection
            except DatabaseUnavailableError:
                self._drop()
                if attempt == 2:
                    raise
                self._logger.warning("database connection lost; reconnecting")
        raise AssertionError("unreachable")

    def _rollback(self, connection: pg8000.native.Connection) -> None:
        try:
            _translate(lambda: connection.run("ROLLBACK"))
        except DatabaseUnavailableError:
            self._drop()
        except DatabaseError:
            self._drop()

    def _drop(self) -> None:
        self.close()

    def _connect(self) -> pg8000.native.Connection:
        if self._connection is not None:
            return self._connection
        import pg8000.native

        p = self._params
        ssl_context: Any = None
        if p.ssl:
            import ssl

            ssl_context = ssl.create_default_context()
        try:
            connection = pg8000.native.Connection(
                user=p.user,
                password=p.password,
                host=p.host or "localhost",
                port=p.port,
                database=p.database,
                unix_sock=p.unix_sock,
                timeout=CONNECT_TIMEOUT_S,
                ssl_context=ssl_context,
                application_name=self._application_name,
                tcp_keepalive=True,
            )
        except (OSError, pg8000.native.InterfaceError) as exc:
            raise DatabaseUnavailableError(
                f"cannot connect to the database: {_reason(exc)}"
            ) from None
        except pg8000.native.DatabaseError as exc:
            code, message = _pg_error(exc)
            if code in {"28P01", "28000", "3D000"}:
                raise DatabaseUnavailableError(
                    f"database rejected the connection ({code})"
                ) from None
            raise QueryError(code, message) from None
        _tune_socket(connection)
        # Statements of a function must not outlive it; the limit is per session.
        connection.run(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        self._connection = connection
        return connection


def _tune_socket(connection: Any) -> None:
    """pg8000 leaves Nagle on (a statement after a large write can stall ~40 ms over TCP) and
    keeps the connect timeout for every read; a statement may run up to statement_timeout."""
    sock = getattr(connection, "_usock", None)
    if not isinstance(sock, socket.socket):
        return
    sock.settimeout(STATEMENT_TIMEOUT_MS / 1000 + 10)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _translate(call: Any) -> Any:
    import pg8000.native

    try:
        return call()
    except (OSError, pg8000.native.InterfaceError) as exc:
        raise DatabaseUnavailableError(f"database connection failed: {_reason(exc)}") from None
    except pg8000.native.DatabaseError as exc:
        code, message = _pg_error(exc)
        if code.startswith("23"):
            raise IntegrityError(code, _constraint(exc)) from None
        if code.startswith("22"):
            raise DataError(code, message) from None
        if code.startswith("08") or code in {"57P01", "57P02", "57P03"}:
            raise DatabaseUnavailableError(f"database connection failed ({code})") from None
        raise QueryError(code, message) from None


def _pg_error(exc: Exception) -> tuple[str, str]:
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(detail.get("C", "XX000")), str(detail.get("M", type(exc).__name__))


def _constraint(exc: Exception) -> str | None:
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    value = detail.get("n")
    return str(value) if value else None


def _reason(exc: Exception) -> str:
    return type(exc).__name__


_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def database(url: str) -> Database:
    """The instance's Database for this URL (reused across warm invocations)."""
    with _databases_lock:
        found = _databases.get(url)
        if found is None:
            found = _databases[url] = Database(url)
        return found
