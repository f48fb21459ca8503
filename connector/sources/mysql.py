"""A customer's MySQL or MariaDB, read through PyMySQL under several independent layers.

Per query, in this order (each stops an attack on its own; see ``connector/GRANTS.md`` for the
user's privileges, the outermost layer):

1. the SQL guard (`connector.sqlguard.check_query`, dialect ``mysql``): one allowlisted
   SELECT, regenerated; its ``?`` placeholders become PyMySQL's ``%s`` (`mysql_pyformat`) and
   the values are escaped by the driver, never formatted into the text by us;
2. the connection never asks for multi-statements (a second statement is a syntax error on
   the server) nor for ``LOAD DATA LOCAL``; the session's ``sql_mode`` is pinned (no
   ``ANSI_QUOTES``, no ``NO_BACKSLASH_ESCAPES``), so the driver's escaping and the guard's
   reading of quotes match the server's;
3. a transaction started ``READ ONLY``, always rolled back;
4. the statement runs under a server-side time limit (MariaDB: ``SET STATEMENT
   max_statement_time=… FOR …``; MySQL: the session's ``max_execution_time``);
5. rows stream from an unbuffered cursor in batches under row, byte and time caps;
6. the session is reset (``COM_RESET_CONNECTION``: user variables, named locks, settings)
   before the connection is reused; a stream closed before its end closes its connection.

Caps: reaching the row cap ends the stream with `RowStream.truncated` set (the page was full:
ask again from the last row); exceeding the byte or time cap raises `LimitExceededError`.

`QueryFailedError.sqlstate` holds the server's MySQL error number (PyMySQL does not surface
SQLSTATEs), e.g. ``"1792"`` for a write in a read-only transaction.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from connector.sources import SelfTestReport
from connector.sources.errors import (
    LimitExceededError,
    QueryFailedError,
    SourceError,
    SourceUnavailableError,
    UnsafeSourceError,
)
from connector.sources.streaming import RowStream, unique_columns
from connector.sqlguard import QueryRejectedError, check_query, mysql_pyformat

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_STATEMENT_TIMEOUT_MS = 15_000
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_BYTES = 64 * MIB
DEFAULT_FETCH_ROWS = 2_000
# Strict, and without ANSI_QUOTES ("…" is a string) or NO_BACKSLASH_ESCAPES (PyMySQL escapes
# quotes with backslashes).
SQL_MODE = (
    "STRICT_TRANS_TABLES,ONLY_FULL_GROUP_BY,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
)
COM_RESET_CONNECTION = 0x1F
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_LOCAL_FILES = 1 << 7

READ_ONLY_TRANSACTION = 1792
STATEMENT_TIMEOUTS = frozenset({1969, 3024})  # MariaDB max_statement_time, MySQL 8
QUERY_INTERRUPTED = 1317
# Client-side "lost connection" errors and server refusals that mean the database is away.
UNAVAILABLE_ERRORS = frozenset(
    {1040, 1044, 1045, 1049, 1053, 1129, 1130, 1203, 1226, 1927, 2002, 2003, 2005, 2006, 2013}
)
UNAVAILABLE_ERRORS |= frozenset({2055, 4031})
# Errors whose server messages name objects, users or privileges, never data values.
QUOTABLE_ERRORS = frozenset(
    {
        1044,  # access denied to database
        1046,  # no database selected
        1142,  # command denied to user for table
        1143,  # column command denied
        1146,  # table does not exist
        1222,  # different number of columns in a set operation
        1227,  # needs a privilege
        1235,  # not supported yet
        1305,  # function does not exist
        1370,  # execute command denied
        1792,  # read-only transaction
        1969,  # max_statement_time exceeded
        3024,  # max_execution_time exceeded
        1317,  # query interrupted
    }
)
# Global or database-wide privileges a read-only connector user must not hold.
FORBIDDEN_PRIVILEGES = frozenset(
    {
        "ALL",
        "ALL PRIVILEGES",
        "FILE",
        "PROCESS",
        "SUPER",
        "SHUTDOWN",
        "RELOAD",
        "CREATE USER",
        "GRANT OPTION",
        "REPLICATION SLAVE",
        "REPLICATION CLIENT",
        "BINLOG ADMIN",
        "BINLOG MONITOR",
        "CONNECTION ADMIN",
        "READ_ONLY ADMIN",
        "SYSTEM_VARIABLES_ADMIN",
        "EXECUTE",
        "CREATE ROUTINE",
        "ALTER ROUTINE",
    }
)
_GRANT_LINE = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<object>\S+) TO ", re.S)
_PROXY_LINE = re.compile(r"^GRANT PROXY ON ", re.S)
_ROLE_LINE = re.compile(r"^GRANT (?P<roles>[^()]+?) TO ", re.S)


class MySQLSource:
    """One customer MySQL or MariaDB database, read-only, shared by the connector's threads.

    `dsn` is ``mysql://user:password@host:port/db`` (``?ssl=require|verify-ca|verify-full``,
    ``ssl_ca=`` optional). `database` is the database the queries read: unqualified table
    names belong to it, and it is the connection's default database. `allowed_tables` are
    ``table`` or ``database.table``.
    """

    dialect = "mysql"

    def __init__(
        self,
        dsn: str,
        *,
        allowed_tables: Collection[str],
        database: str,
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fetch_rows: int = DEFAULT_FETCH_ROWS,
        pool_size: int = 4,
        connect_timeout_s: float = 5.0,
        program_name: str = "hybrid-connector",
    ) -> None:
        if isinstance(allowed_tables, str) or not allowed_tables:
            raise ValueError("allowed_tables must list at least one table")
        if not database:
            raise ValueError("database must name the database the queries read")
        for name, value in (
            ("statement_timeout_ms", statement_timeout_ms),
            ("max_rows", max_rows),
            ("max_bytes", max_bytes),
            ("fetch_rows", fetch_rows),
            ("pool_size", pool_size),
        ):
            if value < 1:
                raise ValueError(f"{name} must be positive")
        self.database = database
        self.allowed_tables = frozenset(_normalise(name, database) for name in allowed_tables)
        self.statement_timeout_ms = statement_timeout_ms
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.fetch_rows = fetch_rows
        self._connect_args = _connect_args(dsn, database, connect_timeout_s, program_name)
        self._connect_args["read_timeout"] = statement_timeout_ms / 1000 + 10
        self._connect_args["write_timeout"] = statement_timeout_ms / 1000 + 10
        self._pool = _Pool(self._connect, pool_size, wait_s=statement_timeout_ms / 1000)

    # --- public API ---------------------------------------------------------------------------

    def query(
        self, sql: str, params: Sequence[Any] = (), *, max_rows: int | None = None
    ) -> RowStream:
        """Run one guarded query; rows stream as dicts from the returned RowStream.

        Raises QueryRejectedError, QueryFailedError, LimitExceededError or
        SourceUnavailableError. Close the stream (or exhaust it, or use ``with``) to end the
        transaction early.
        """
        guarded = check_query(
            sql,
            dialect="mysql",
            allowed_tables=self.allowed_tables,
            default_schema=self.database,
        )
        values = _check_params(params, guarded.param_count)
        return self._execute(mysql_pyformat(guarded.sql), values, max_rows=max_rows)

    def ping(self) -> float:
        """Round-trip latency of ``SELECT 1`` in milliseconds."""
        with self._pool.lease() as lease:
            started = time.perf_counter()
            lease.run(lambda con: _run(con, "SELECT 1"))
            return (time.perf_counter() - started) * 1000

    def self_test(self) -> SelfTestReport:
        """Prove at startup that this source cannot write; raise UnsafeSourceError if it can.

        A deliberate write inside the read-only transaction the queries use must fail as a
        read-only violation (a temporary table, and a zero-row INSERT on an allowlisted
        table). Then ``SHOW GRANTS`` must list only SELECT on allowlisted tables (USAGE on
        ``*.*`` aside): no global privileges, nothing database-wide, no FILE, PROCESS, SUPER
        or ALL, no roles, no proxy. Everything runs in transactions that are rolled back.
        """
        problems: list[str] = []
        warnings: list[str] = []
        checks: list[str] = []
        with self._pool.lease() as lease:
            present = self._present_tables(lease, warnings)
            checks.append("read-only transaction refuses CREATE TEMPORARY TABLE and INSERT")
            problems += self._read_only_transaction_holds(lease, present)
            checks.append("SHOW GRANTS: only SELECT on allowlisted tables")
            problems += self._grant_findings(lease, warnings)
        if problems:
            logger.warning("source self-test failed problems=%d", len(problems))
            raise UnsafeSourceError(tuple(problems))
        return SelfTestReport(checks=tuple(checks), warnings=tuple(warnings))

    def close(self) -> None:
        """Close the idle connections (streams still open keep theirs until closed)."""
        self._pool.close()

    # --- below the guard ------------------------------------------------------------------------

    def _execute(
        self, sql: str, params: Sequence[Any], *, max_rows: int | None = None
    ) -> RowStream:
        """Every layer but the SQL guard: tests call this directly to prove the database side
        holds on its own. `sql` is in PyMySQL's format and must come from `check_query` (via
        `mysql_pyformat`) everywhere else."""
        row_cap = self.max_rows if max_rows is None else max(0, min(max_rows, self.max_rows))
        lease = self._open_transaction()
        stream: RowStream | None = None
        try:
            started = time.monotonic()
            statement = self._timed(lease, sql)
            cursor = lease.run(lambda con: _unbuffered(con, statement, tuple(params)))
            lease.cursor = cursor
            stream = MySQLRowStream(self, lease, started, row_cap)
            stream._fetch_more()
        except BaseException:
            if stream is not None:
                stream.close()
            else:
                self._pool.release(lease)
            raise
        return stream

    def _timed(self, lease: _Lease, sql: str) -> str:
        seconds = self.statement_timeout_ms / 1000
        if lease.mariadb:
            return f"SET STATEMENT max_statement_time={seconds:.3f} FOR {sql}"
        lease.run(
            lambda con: _run(con, f"SET SESSION max_execution_time = {self.statement_timeout_ms}")
        )
        return sql

    def _open_transaction(self) -> _Lease:
        """A lease inside a fresh read-only transaction; an idle connection that turns out to
        be dead (the server restarted) is replaced once, since nothing was sent yet."""
        for attempt in (1, 2):
            lease = self._pool.acquire()
            try:
                lease.begin("START TRANSACTION READ ONLY")
                return lease
            except SourceUnavailableError:
                self._pool.release(lease)
                if attempt == 2 or not lease.reused:
                    raise
            except BaseException:
                self._pool.release(lease)
                raise
        raise AssertionError("unreachable")

    def _fetch(self, lease: _Lease, started: float, count: int) -> list[Any]:
        if (time.monotonic() - started) * 1000 > self.statement_timeout_ms:
            raise LimitExceededError("time", self.statement_timeout_ms)
        cursor = lease.cursor
        assert cursor is not None
        try:
            rows = lease.run(lambda _: cursor.fetchmany(count))
        except QueryFailedError as exc:
            if _is_timeout(exc):
                raise LimitExceededError("time", self.statement_timeout_ms) from None
            raise
        return list(rows)

    # --- self-test --------------------------------------------------------------------------

    def _present_tables(self, lease: _Lease, warnings: list[str]) -> list[tuple[str, str]]:
        """(configured name, quoted name) of the allowlisted tables the user can see."""
        present = []
        for name in sorted(self.allowed_tables):
            schema, table = name.split(".", 1)
            found = lease.run(partial(_run, sql=_TABLE_EXISTS, params=(schema, table)))
            if found and found[0][0]:
                present.append((name, f"{_ident(schema)}.{_ident(table)}"))
            else:
                warnings.append(f"allowlisted table {name} does not exist or is not readable")
        lease.rollback()
        return present

    def _read_only_transaction_holds(
        self, lease: _Lease, tables: list[tuple[str, str]]
    ) -> list[str]:
        problems: list[str] = []
        attempts = [
            ("CREATE TEMPORARY TABLE", "CREATE TEMPORARY TABLE connector_self_test (x int)")
        ]
        attempts += [
            (f"INSERT on {name}", f"INSERT INTO {text} SELECT * FROM {text} WHERE 1 = 0")
            for name, text in tables[:1]
        ]
        for label, statement in attempts:
            lease.begin("START TRANSACTION READ ONLY")
            try:
                outcome = self._attempt_write(lease, statement)
            finally:
                lease.rollback()
                lease.run(
                    lambda con: _run(con, "DROP TEMPORARY TABLE IF EXISTS connector_self_test")
                )
            if outcome is None:
                problems.append(f"{label} succeeded in a READ ONLY transaction")
            elif outcome != READ_ONLY_TRANSACTION and label.startswith("CREATE"):
                problems.append(
                    f"{label} in a READ ONLY transaction failed with {outcome}, not 1792"
                )
        return problems

    @staticmethod
    def _attempt_write(lease: _Lease, statement: str) -> int | None:
        """None if the deliberate write succeeded, else the server's error number."""
        try:
            lease.run(lambda con: _run(con, statement))
        except QueryFailedError as exc:
            return int(exc.sqlstate) if exc.sqlstate and exc.sqlstate.isdigit() else -1
        return None

    def _grant_findings(self, lease: _Lease, warnings: list[str]) -> list[str]:
        lines = [str(row[0]) for row in lease.run(lambda con: _run(con, "SHOW GRANTS"))]
        lease.rollback()
        problems: list[str] = []
        readable: set[str] = set()
        for line in lines:
            problems += _grant_problems(line, self.allowed_tables, readable)
        for name in sorted(self.allowed_tables - readable):
            warnings.append(f"the user has no SELECT on allowlisted table {name}")
        return problems

    # --- connections ------------------------------------------------------------------------

    def _connect(self) -> Any:
        import pymysql

        try:
            connection = pymysql.connect(**self._connect_args)
        except pymysql.err.OperationalError as exc:
            code = _errno(exc)
            if code in {1045, 1044, 1049, 1130, 1226, 1040}:
                raise SourceUnavailableError(
                    f"the database refused the connection ({code})"
                ) from None
            raise SourceUnavailableError(
                f"cannot connect to the database: {type(exc).__name__}"
            ) from None
        except (OSError, pymysql.err.MySQLError) as exc:
            raise SourceUnavailableError(
                f"cannot connect to the database: {type(exc).__name__}"
            ) from None
        if connection.client_flag & (CLIENT_MULTI_STATEMENTS | CLIENT_LOCAL_FILES):
            connection.close()
            raise SourceUnavailableError("the connection allows multi-statements or local files")
        _tune_socket(connection)
        return connection


def _setup_session(connection: Any) -> bool:
    """Pin the session's settings; True when the server is MariaDB."""
    _run(connection, f"SET SESSION sql_mode = '{SQL_MODE}'")
    _run(connection, "SET SESSION autocommit = 0")
    _run(connection, "SET SESSION time_zone = '+00:00'")
    return "mariadb" in str(connection.get_server_info()).lower()


class MySQLRowStream(RowStream):
    """Rows from an unbuffered cursor; closing early also closes the connection, so the
    server stops sending the rest."""

    def __init__(self, source: MySQLSource, lease: _Lease, started: float, row_cap: int) -> None:
        super().__init__(row_cap=row_cap, max_bytes=source.max_bytes, fetch_rows=source.fetch_rows)
        self._source = source
        self._lease = lease
        self._started = started
        cursor = lease.cursor
        description = cursor.description if cursor is not None else None
        self.columns = unique_columns([str(d[0]) for d in description or ()])

    def _fetch_batch(self, wanted: int) -> list[Any]:
        rows: list[Any] = self._source._fetch(self._lease, self._started, wanted)
        return rows

    def _release(self, *, exhausted: bool) -> None:
        if not exhausted:
            self._lease.broken = True  # unread rows are still on the wire
        self._source._pool.release(self._lease)


# --- helpers ------------------------------------------------------------------------------------


class _Lease:
    """One pooled connection lent to one query; driver errors are translated here."""

    def __init__(self, connection: Any, *, reused: bool, mariadb: bool) -> None:
        self.connection = connection
        self.reused = reused
        self.mariadb = mariadb
        self.broken = False
        self.in_transaction = False
        self.cursor: Any = None

    def run(self, call: Callable[[Any], Any]) -> Any:
        import pymysql

        try:
            return call(self.connection)
        except (OSError, pymysql.err.InterfaceError) as exc:
            self.broken = True
            raise SourceUnavailableError(
                f"the database connection failed: {type(exc).__name__}"
            ) from None
        except pymysql.err.MySQLError as exc:
            code = _errno(exc)
            if code in UNAVAILABLE_ERRORS or code == 0:
                self.broken = True
                raise SourceUnavailableError(f"the database connection failed ({code})") from None
            raise QueryFailedError(str(code), _safe_message(code, exc)) from None

    def begin(self, statement: str) -> None:
        self.run(lambda con: _run(con, statement))
        self.in_transaction = True

    def rollback(self) -> None:
        if self.in_transaction and not self.broken:
            self.run(lambda con: con.rollback())
        self.in_transaction = False


class _Pool:
    """At most `size` connections; idle ones are reused after a session reset."""

    def __init__(self, connect: Callable[[], Any], size: int, *, wait_s: float) -> None:
        self._connect = connect
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[tuple[Any, bool]] = []
        self._lock = threading.Lock()
        self._wait_s = wait_s
        self.size = size

    def acquire(self) -> _Lease:
        if not self._slots.acquire(timeout=self._wait_s):
            raise SourceUnavailableError(f"all {self.size} database connections are busy")
        try:
            with self._lock:
                idle = self._idle.pop() if self._idle else None
            if idle is not None:
                return _Lease(idle[0], reused=True, mariadb=idle[1])
            connection = self._connect()
            lease = _Lease(connection, reused=False, mariadb=False)
            try:
                lease.mariadb = bool(lease.run(_setup_session))
            except BaseException:
                _close_quietly(connection)
                raise
            return lease
        except BaseException:
            self._slots.release()
            raise

    def release(self, lease: _Lease) -> None:
        try:
            if lease.broken:
                _abandon_result(lease)
            lease.cursor = None
            if not lease.broken:
                try:
                    lease.rollback()
                    lease.run(_reset_session)
                except SourceError:
                    lease.broken = True
            if lease.broken:
                _close_quietly(lease.connection)
            else:
                with self._lock:
                    self._idle.append((lease.connection, lease.mariadb))
        finally:
            self._slots.release()

    @contextmanager
    def lease(self) -> Iterator[_Lease]:
        lease = self.acquire()
        try:
            yield lease
        finally:
            self.release(lease)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            _close_quietly(connection)


def _abandon_result(lease: _Lease) -> None:
    """Unread rows of an unbuffered result are dropped with the connection: PyMySQL must not
    try to read them from a closed socket when the result is garbage-collected."""
    for holder in (lease.cursor, lease.connection):
        result = getattr(holder, "_result", None)
        if result is not None and hasattr(result, "unbuffered_active"):
            result.unbuffered_active = False


def _reset_session(connection: Any) -> None:
    """COM_RESET_CONNECTION (user variables, named locks, temporary tables, settings), then
    the session's settings again."""
    connection._execute_command(COM_RESET_CONNECTION, b"")
    connection._read_ok_packet()
    _setup_session(connection)


_TABLE_EXISTS = (
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s"
)


def _run(connection: Any, sql: str, params: tuple[Any, ...] | None = None) -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _unbuffered(connection: Any, sql: str, params: tuple[Any, ...]) -> Any:
    import pymysql.cursors

    cursor = connection.cursor(pymysql.cursors.SSCursor)
    cursor.execute(sql, params)
    return cursor


def _close_quietly(connection: Any) -> None:
    try:
        connection.close()
    except Exception as exc:  # noqa: BLE001 - closing a dead socket may fail any way
        logger.debug("closing a database connection failed error=%s", type(exc).__name__)


def _errno(exc: Exception) -> int:
    first = exc.args[0] if exc.args else 0
    return first if isinstance(first, int) else 0


def _safe_message(code: int, exc: Exception) -> str:
    if code in QUOTABLE_ERRORS and len(exc.args) > 1:
        return str(exc.args[1])
    return "details withheld: they may quote data"


def _is_timeout(exc: QueryFailedError) -> bool:
    code = int(exc.sqlstate) if exc.sqlstate and exc.sqlstate.isdigit() else 0
    return code in STATEMENT_TIMEOUTS or code == QUERY_INTERRUPTED


_SCALARS = (str, int, float, bool, Decimal, datetime, date, dt_time, timedelta, bytes)


def _check_params(params: Sequence[Any], expected: int) -> tuple[Any, ...]:
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        raise QueryRejectedError("params must be a list")
    if len(params) != expected:
        raise QueryRejectedError(f"the query takes {expected} parameters, {len(params)} were given")
    for value in params:
        if value is not None and not isinstance(value, _SCALARS):
            raise QueryRejectedError(f"parameters cannot be of type {type(value).__name__}")
    return tuple(params)


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _normalise(name: str, database: str) -> str:
    """``db.table`` in lower case (the guard compares names case-insensitively)."""
    parts = [part.strip().strip("`") for part in name.split(".")]
    if len(parts) == 1:
        parts = [database, parts[0]]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"not a table name: {name!r}")
    return f"{parts[0]}.{parts[1]}".lower()


def _grant_problems(line: str, allowed: frozenset[str], readable: set[str]) -> list[str]:
    """Problems in one ``SHOW GRANTS`` line; SELECT-only allowlisted tables go to `readable`."""
    if _PROXY_LINE.match(line):
        return ["the user may act as another user (GRANT PROXY)"]
    match = _GRANT_LINE.match(line)
    if match is None:
        role = _ROLE_LINE.match(line)
        if role is not None:
            return [f"the user holds roles: {role.group('roles').strip()}"]
        return ["a grant the self-test cannot read"]
    privileges = [
        p.strip().upper() for p in re.sub(r"\([^)]*\)", "", match["privileges"]).split(",")
    ]
    target = match["object"].replace("`", "").lower()
    if privileges == ["USAGE"]:
        return ["the user may grant its privileges"] if "WITH GRANT OPTION" in line else []
    problems: list[str] = []
    if "WITH GRANT OPTION" in line.upper():
        problems.append(f"may grant its privileges on {target}")
    if target == "*.*":
        problems.append(f"holds global privileges: {', '.join(privileges)}")
    elif target.endswith(".*"):
        problems.append(f"holds {', '.join(privileges)} on every table of {target[:-2]}")
    else:
        others = [p for p in privileges if p != "SELECT"]
        if others:
            problems.append(f"holds {', '.join(others)} on {target}")
        if "SELECT" in privileges:
            if target in allowed:
                readable.add(target)
            else:
                problems.append(f"may read {target}, which is not allowlisted")
    dangerous = sorted(set(privileges) & FORBIDDEN_PRIVILEGES)
    if dangerous:
        problems.append(f"holds {', '.join(dangerous)}")
    return problems


def _tune_socket(connection: Any) -> None:
    sock = getattr(connection, "_sock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _connect_args(dsn: str, database: str, timeout_s: float, program_name: str) -> dict[str, Any]:
    parts = urlsplit(dsn)
    if parts.scheme not in {"mysql", "mariadb"}:
        raise ValueError("the MySQL source needs a mysql:// DSN")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    mode = query.get("ssl", "disable")
    ssl_context: ssl.SSLContext | None = None
    if mode in {"require", "verify-ca", "verify-full"}:
        ssl_context = ssl.create_default_context(cafile=query.get("ssl_ca"))
        if mode != "verify-full":
            ssl_context.check_hostname = False
        if mode == "require":
            ssl_context.verify_mode = ssl.CERT_NONE
    elif mode != "disable":
        raise ValueError(f"unsupported ssl mode {mode!r}")
    path_db = unquote(parts.path.lstrip("/"))
    if path_db and path_db != database:
        raise ValueError("the DSN names a different database than `database`")
    return {
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password) if parts.password else "",
        "host": parts.hostname or "localhost",
        "port": parts.port or 3306,
        "database": database,
        "charset": "utf8mb4",
        "connect_timeout": timeout_s,
        "autocommit": False,
        "local_infile": False,
        "client_flag": 0,
        "ssl": ssl_context,
        "program_name": program_name,
    }
