"""A customer's PostgreSQL, read through pg8000 under several independent layers.

Per query, in this order (each stops an attack on its own; see ``connector/GRANTS.md`` for the
role's privileges, the outermost layer):

1. the SQL guard (`connector.sqlguard.check_query`): one allowlisted SELECT, regenerated;
2. a transaction started ``READ ONLY``, with ``SET LOCAL`` statement timeout, search_path
   pinned to the source's schema and standard-conforming strings, always rolled back;
3. the server's plan (``EXPLAIN``) must not read system relations or system functions;
4. the query runs as ``DECLARE … CURSOR FOR <query>`` on the extended protocol: one statement
   (the server refuses a second), bound parameters, and a cursor only takes a plain query (no
   ``SELECT INTO``, no data-modifying ``WITH``);
5. rows are fetched in batches under row, byte and server-time caps;
6. the session is reset (``DISCARD ALL``) before the connection is reused, so nothing a query
   managed to set (a setting, an advisory lock) outlives it.

Caps: reaching the row cap ends the stream with `RowStream.truncated` set (the page was full:
ask again from the last row); exceeding the byte or time cap raises `LimitExceededError`.
"""

from __future__ import annotations

import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

from connector.sources import SelfTestReport
from connector.sources.errors import (
    LimitExceededError,
    PlanRejectedError,
    QueryFailedError,
    SourceError,
    SourceUnavailableError,
    UnsafeSourceError,
)
from connector.sources.streaming import RowStream, unique_columns
from connector.sqlguard import QueryRejectedError, check_query, normalise_table_name

if TYPE_CHECKING:
    import pg8000.native

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_STATEMENT_TIMEOUT_MS = 15_000
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_BYTES = 64 * MIB
DEFAULT_FETCH_ROWS = 2_000
CURSOR = "connector_rows"
# The server's plan may call these system functions (set-returning functions the SQL guard
# allows in FROM); any other pg_catalog function or relation in the plan is refused.
PLAN_FUNCTIONS = frozenset(
    {
        "generate_series",
        "unnest",
        "json_array_elements",
        "json_array_elements_text",
        "json_each",
        "json_each_text",
        "jsonb_array_elements",
        "jsonb_array_elements_text",
        "jsonb_each",
        "jsonb_each_text",
        "jsonb_object_keys",
        "regexp_split_to_table",
    }
)
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})
# Built-in roles that grant file, program, signal or blanket data powers.
POWERFUL_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_signal_backend",
    "pg_checkpoint",
    "pg_create_subscription",
)
# Functions that reach outside the transaction or the server's data (installed extensions).
REMOTE_FUNCTIONS = (
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "lo_import",
    "lo_export",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_file_write",
)
UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300", "25P03", "28000", "28P01"})
# Error classes whose server messages name objects, never data values.
QUOTABLE_CLASSES = frozenset({"0A", "25", "42", "53", "54", "57"})
READ_ONLY_TRANSACTION = "25006"
QUERY_CANCELED = "57014"
LOCK_NOT_AVAILABLE = "55P03"


class PostgresSource:
    """One customer PostgreSQL database, read-only, shared by the connector's threads.

    `dsn` is ``postgresql://user:password@host:port/db`` (``?sslmode=require|verify-ca|
    verify-full``, ``sslrootcert=``, ``host=/socket/dir`` optional). `allowed_tables` are
    ``table`` or ``schema.table``; unqualified names belong to `schema`, which is also the
    only schema on the query's search_path.
    """

    dialect = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        allowed_tables: Collection[str],
        schema: str = "public",
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fetch_rows: int = DEFAULT_FETCH_ROWS,
        pool_size: int = 4,
        connect_timeout_s: float = 5.0,
        idle_in_transaction_timeout_ms: int = 60_000,
        application_name: str = "hybrid-connector",
    ) -> None:
        if isinstance(allowed_tables, str) or not allowed_tables:
            raise ValueError("allowed_tables must list at least one table")
        for name, value in (
            ("statement_timeout_ms", statement_timeout_ms),
            ("max_rows", max_rows),
            ("max_bytes", max_bytes),
            ("fetch_rows", fetch_rows),
            ("pool_size", pool_size),
            ("idle_in_transaction_timeout_ms", idle_in_transaction_timeout_ms),
        ):
            if value < 1:
                raise ValueError(f"{name} must be positive")
        self.schema = schema
        self.allowed_tables = frozenset(
            normalise_table_name(name, dialect="postgres", default_schema=schema)
            for name in allowed_tables
        )
        self.statement_timeout_ms = statement_timeout_ms
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.fetch_rows = fetch_rows
        self._idle_timeout_ms = idle_in_transaction_timeout_ms
        self._connect_args = _connect_args(dsn, connect_timeout_s, application_name)
        self._read_timeout_s = statement_timeout_ms / 1000 + 10
        self._pool = _Pool(self._connect, pool_size, wait_s=statement_timeout_ms / 1000)

    # --- public API ---------------------------------------------------------------------------

    def query(
        self, sql: str, params: Sequence[Any] = (), *, max_rows: int | None = None
    ) -> RowStream:
        """Run one guarded query; rows stream as dicts from the returned RowStream.

        Raises QueryRejectedError (guard or plan), QueryFailedError, LimitExceededError or
        SourceUnavailableError. Close the stream (or exhaust it, or use ``with``) to end the
        transaction early.
        """
        guarded = check_query(
            sql,
            dialect="postgres",
            allowed_tables=self.allowed_tables,
            default_schema=self.schema,
        )
        values = _check_params(params, guarded.param_count)
        return self._execute(guarded.sql, values, max_rows=max_rows)

    def ping(self) -> float:
        """Round-trip latency of ``SELECT 1`` in milliseconds."""
        with self._pool.lease() as lease:
            started = time.perf_counter()
            lease.run(lambda con: con.run("SELECT 1"))
            return (time.perf_counter() - started) * 1000

    def self_test(self) -> SelfTestReport:
        """Prove at startup that this source cannot write; raise UnsafeSourceError if it can.

        Deliberate writes: CREATE TEMP TABLE and INSERT inside the read-only transaction the
        queries use must fail (the transaction layer), and zero-row INSERT and DELETE on every
        allowlisted table inside an explicitly READ WRITE transaction must fail too (the
        privilege layer, checked as if the transaction layer had been bypassed). The catalog
        is then asked what the role, and every role it can become, may do: superuser or other
        powerful attributes, file/program/signal built-in roles, write privileges on the
        allowlisted tables, CREATE on the database or any schema, and EXECUTE on functions
        that reach outside the database (dblink, server-side large objects and files).
        Everything runs in transactions that are rolled back.
        """
        problems: list[str] = []
        warnings: list[str] = []
        checks: list[str] = []
        with self._pool.lease() as lease:
            present = self._present_tables(lease, warnings)
            checks.append("read-only transaction refuses CREATE TEMP TABLE and INSERT")
            problems += self._read_only_transaction_holds(lease, present)
            if lease.run(lambda con: con.run("SELECT pg_is_in_recovery()"))[0][0]:
                warnings.append("the server is a standby: it cannot write at all")
            else:
                checks.append("READ WRITE transaction: INSERT and DELETE refused on every table")
                problems += self._privileges_refuse_writes(lease, present, warnings)
            checks.append("catalog: role attributes, built-in roles, privileges, functions")
            problems += self._catalog_findings(lease, warnings)
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
        holds on its own. `sql` must come from `check_query` everywhere else."""
        row_cap = self.max_rows if max_rows is None else max(0, min(max_rows, self.max_rows))
        lease = self._open_transaction()
        stream: RowStream | None = None
        try:
            budget = _TimeBudget(self.statement_timeout_ms)
            budget.spend(lambda: self._check_plan(lease, sql, params))
            budget.spend(
                lambda: lease.run(
                    lambda con: con.execute_unnamed(
                        f"DECLARE {CURSOR} NO SCROLL CURSOR FOR {sql}", tuple(params)
                    )
                )
            )
            stream = PostgresRowStream(self, lease, budget, row_cap)
            stream._fetch_more()
        except BaseException:
            if stream is not None:
                stream.close()
            else:
                self._pool.release(lease)
            raise
        return stream

    def _open_transaction(self) -> _Lease:
        """A lease inside a fresh read-only transaction; an idle connection that turns out to
        be dead (the server restarted) is replaced once, since nothing was sent yet."""
        for attempt in (1, 2):
            lease = self._pool.acquire()
            try:
                self._begin(lease)
                return lease
            except SourceUnavailableError:
                self._pool.release(lease)
                if attempt == 2 or not lease.reused:
                    raise
            except BaseException:
                self._pool.release(lease)
                raise
        raise AssertionError("unreachable")

    def _begin(self, lease: _Lease) -> None:
        """Our own constant statements in one simple-protocol round trip (the only text sent
        that way; the schema name is quoted as an identifier)."""
        from pg8000.native import identifier

        lease.begin(
            "START TRANSACTION READ ONLY; "
            f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}; "
            f"SET LOCAL idle_in_transaction_session_timeout = {int(self._idle_timeout_ms)}; "
            f"SET LOCAL search_path = {identifier(self.schema)}, pg_temp; "
            "SET LOCAL standard_conforming_strings = on"
        )

    def _check_plan(self, lease: _Lease, sql: str, params: Sequence[Any]) -> None:
        context = lease.run(
            lambda con: con.execute_unnamed(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}", tuple(params))
        )
        found = _system_objects(context.rows[0][0] if context.rows else None)
        if found:
            raise PlanRejectedError(f"the server's plan reads system objects: {found}")

    def _fetch(self, lease: _Lease, budget: _TimeBudget, count: int) -> tuple[list[str], list[Any]]:
        remaining_ms = budget.remaining_ms()
        if remaining_ms < self.statement_timeout_ms:
            lease.run(lambda con: con.run(f"SET LOCAL statement_timeout = {max(1, remaining_ms)}"))
        context = budget.spend(
            lambda: lease.run(
                lambda con: con.execute_unnamed(f"FETCH FORWARD {int(count)} FROM {CURSOR}")
            )
        )
        names = [column["name"] for column in (context.columns or [])]
        return names, context.rows or []

    # --- self-test --------------------------------------------------------------------------

    def _present_tables(self, lease: _Lease, warnings: list[str]) -> list[tuple[str, str]]:
        """(configured name, quoted name) of the allowlisted tables that exist."""
        quoted = {name: _quoted(name) for name in sorted(self.allowed_tables)}
        self._begin(lease)
        try:
            rows = lease.run(
                lambda con: con.execute_unnamed(
                    "SELECT t.name, to_regclass(t.name) IS NOT NULL "
                    "FROM unnest(CAST($1 AS text[])) AS t(name)",
                    (list(quoted.values()),),
                )
            ).rows
        finally:
            lease.rollback()
        existing = {name for name, exists in rows if exists}
        for name, text in quoted.items():
            if text not in existing:
                warnings.append(f"allowlisted table {name} does not exist")
        return [(name, text) for name, text in quoted.items() if text in existing]

    def _read_only_transaction_holds(
        self, lease: _Lease, tables: list[tuple[str, str]]
    ) -> list[str]:
        """CREATE TEMP TABLE must fail as a read-only violation (whatever the role may do),
        and an INSERT must fail too (a view may refuse it for its own reasons first)."""
        problems: list[str] = []
        self._begin(lease)
        try:
            outcome = self._attempt_write(lease, "CREATE TEMP TABLE connector_self_test (x int)")
            if outcome != READ_ONLY_TRANSACTION:
                problems.append(
                    "CREATE TEMP TABLE in a READ ONLY transaction "
                    + ("succeeded" if outcome is None else f"failed with {outcome}, not 25006")
                )
            for name, text in tables[:1]:
                statement = f"INSERT INTO {text} SELECT * FROM {text} WHERE false"
                if self._attempt_write(lease, statement) is None:
                    problems.append(f"INSERT on {name} succeeded in a READ ONLY transaction")
        finally:
            lease.rollback()
        return problems

    def _privileges_refuse_writes(
        self, lease: _Lease, tables: list[tuple[str, str]], warnings: list[str]
    ) -> list[str]:
        problems: list[str] = []
        lease.begin(
            "START TRANSACTION READ WRITE; SET LOCAL lock_timeout = 2000; "
            f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}"
        )
        try:
            for name, text in tables:
                for verb, statement in (
                    ("INSERT", f"INSERT INTO {text} SELECT * FROM {text} WHERE false"),
                    ("DELETE", f"DELETE FROM {text} WHERE false"),
                ):
                    outcome = self._attempt_write(lease, statement)
                    if outcome is None:
                        problems.append(f"a deliberate {verb} on {name} succeeded (READ WRITE)")
                    elif outcome == LOCK_NOT_AVAILABLE:
                        warnings.append(
                            f"{verb} on {name} waited for a lock: the catalog check decides"
                        )
        finally:
            lease.rollback()
        return problems

    @staticmethod
    def _attempt_write(lease: _Lease, statement: str) -> str | None:
        """Run a deliberate write under a savepoint: None if it succeeded, else its SQLSTATE."""
        lease.run(lambda con: con.run("SAVEPOINT connector_self_test"))
        try:
            lease.run(lambda con: con.execute_unnamed(statement))
        except QueryFailedError as exc:
            lease.run(lambda con: con.run("ROLLBACK TO SAVEPOINT connector_self_test"))
            return exc.sqlstate or "unknown"
        lease.run(lambda con: con.run("ROLLBACK TO SAVEPOINT connector_self_test"))
        return None

    def _catalog_findings(self, lease: _Lease, warnings: list[str]) -> list[str]:
        names = sorted(self.allowed_tables)
        self._begin(lease)
        try:
            found = lease.run(
                lambda con: con.execute_unnamed(
                    _CATALOG_QUERY,
                    (
                        list(POWERFUL_ROLES),
                        [_quoted(n) for n in names],
                        names,
                        list(REMOTE_FUNCTIONS),
                    ),
                )
            ).rows
        finally:
            lease.rollback()
        problems: list[str] = []
        for kind, subject, detail in found:
            (warnings if kind == "warning" else problems).append(f"{subject}: {detail}")
        return problems

    # --- connections ------------------------------------------------------------------------

    def _connect(self) -> pg8000.native.Connection:
        import pg8000.native

        try:
            connection = pg8000.native.Connection(**self._connect_args)
        except (OSError, pg8000.native.InterfaceError) as exc:
            raise SourceUnavailableError(
                f"cannot connect to the database: {type(exc).__name__}"
            ) from None
        except pg8000.native.DatabaseError as exc:
            code, _ = _pg_error(exc)
            raise SourceUnavailableError(f"the database refused the connection ({code})") from None
        _tune_socket(connection, self._read_timeout_s)
        return connection


class PostgresRowStream(RowStream):
    """Rows from a server-side cursor. A stream left unread longer than the source's
    idle-in-transaction timeout loses its connection: the next row raises
    SourceUnavailableError."""

    def __init__(
        self, source: PostgresSource, lease: _Lease, budget: _TimeBudget, row_cap: int
    ) -> None:
        super().__init__(row_cap=row_cap, max_bytes=source.max_bytes, fetch_rows=source.fetch_rows)
        self._source = source
        self._lease = lease
        self._budget = budget

    def _fetch_batch(self, wanted: int) -> list[Any]:
        names, rows = self._source._fetch(self._lease, self._budget, wanted)
        self.columns = unique_columns(names)
        return rows

    def _release(self, *, exhausted: bool) -> None:
        self._source._pool.release(self._lease)


# --- helpers ------------------------------------------------------------------------------------


class _TimeBudget:
    """Server time left for one query: the statement timeout spans all of its round trips."""

    def __init__(self, limit_ms: int) -> None:
        self.limit_ms = limit_ms
        self.spent_s = 0.0

    def remaining_ms(self) -> int:
        remaining = self.limit_ms - math.ceil(self.spent_s * 1000)
        if remaining <= 0:
            raise LimitExceededError("time", self.limit_ms)
        return remaining

    def spend(self, call: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return call()
        except QueryFailedError as exc:
            if exc.sqlstate == QUERY_CANCELED and "statement timeout" in exc.message:
                raise LimitExceededError("time", self.limit_ms) from None
            raise
        finally:
            self.spent_s += time.monotonic() - started


class _Lease:
    """One pooled connection lent to one query; SDK errors are translated here."""

    def __init__(self, connection: pg8000.native.Connection, *, reused: bool) -> None:
        self.connection = connection
        self.reused = reused
        self.broken = False
        self.in_transaction = False

    def run(self, call: Callable[[pg8000.native.Connection], Any]) -> Any:
        import pg8000.native

        try:
            return call(self.connection)
        except (OSError, pg8000.native.InterfaceError) as exc:
            self.broken = True
            raise SourceUnavailableError(
                f"the database connection failed: {type(exc).__name__}"
            ) from None
        except pg8000.native.DatabaseError as exc:
            code, message = _pg_error(exc)
            if code.startswith("08") or code in UNAVAILABLE_STATES:
                self.broken = True
                raise SourceUnavailableError(f"the database connection failed ({code})") from None
            raise QueryFailedError(code, _safe_message(code, message)) from None

    def begin(self, statements: str) -> None:
        self.run(lambda con: con.run(statements))
        self.in_transaction = True

    def rollback(self) -> None:
        if self.in_transaction and not self.broken:
            self.run(lambda con: con.run("ROLLBACK"))
        self.in_transaction = False


class _Pool:
    """At most `size` connections; idle ones are reused after a session reset."""

    def __init__(
        self, connect: Callable[[], pg8000.native.Connection], size: int, *, wait_s: float
    ) -> None:
        self._connect = connect
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[pg8000.native.Connection] = []
        self._lock = threading.Lock()
        self._wait_s = wait_s
        self.size = size

    def acquire(self) -> _Lease:
        if not self._slots.acquire(timeout=self._wait_s):
            raise SourceUnavailableError(f"all {self.size} database connections are busy")
        try:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is not None:
                return _Lease(connection, reused=True)
            return _Lease(self._connect(), reused=False)
        except BaseException:
            self._slots.release()
            raise

    def release(self, lease: _Lease) -> None:
        try:
            if not lease.broken:
                try:
                    lease.rollback()
                    lease.run(lambda con: con.run("DISCARD ALL"))
                except SourceError:
                    lease.broken = True
            if lease.broken:
                _close_quietly(lease.connection)
            else:
                with self._lock:
                    self._idle.append(lease.connection)
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
        for connection in idle:
            _close_quietly(connection)


def _close_quietly(connection: pg8000.native.Connection) -> None:
    try:
        connection.close()
    except Exception as exc:  # noqa: BLE001 - closing a dead socket may fail any way
        logger.debug("closing a database connection failed error=%s", type(exc).__name__)


def _check_params(params: Sequence[Any], expected: int) -> tuple[Any, ...]:
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        raise QueryRejectedError("params must be a list")
    if len(params) != expected:
        raise QueryRejectedError(f"the query takes {expected} parameters, {len(params)} were given")
    for value in params:
        if not _bindable(value):
            raise QueryRejectedError(f"parameters cannot be of type {type(value).__name__}")
    return tuple(params)


_SCALARS = (str, int, float, bool, Decimal, datetime, date, dt_time, timedelta, UUID, bytes)


def _bindable(value: Any) -> bool:
    if value is None or isinstance(value, _SCALARS):
        return True
    return isinstance(value, list) and all(
        _bindable(item) and not isinstance(item, list) for item in value
    )


def _system_objects(plan: Any) -> str:
    """Comma-separated system relations and functions named anywhere in an EXPLAIN plan."""
    found: set[str] = set()
    pending = list(plan) if isinstance(plan, list) else [plan]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        schema = str(node.get("Schema") or "")
        if schema in SYSTEM_SCHEMAS or schema.startswith(("pg_toast", "pg_temp")):
            relation = node.get("Relation Name")
            function = node.get("Function Name")
            if relation or function not in PLAN_FUNCTIONS:
                found.add(f"{schema}.{relation or function or node.get('Node Type')}")
        pending.extend(value for value in node.values() if isinstance(value, (dict, list)))
    return ", ".join(sorted(found))


def _quoted(name: str) -> str:
    """A normalised ``schema.table`` as SQL text with both parts quoted."""
    from pg8000.native import identifier

    return ".".join(identifier(part) for part in name.split(".", 1))


def _pg_error(exc: Exception) -> tuple[str, str]:
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(detail.get("C", "XX000")), str(detail.get("M", type(exc).__name__))


def _safe_message(code: str, message: str) -> str:
    return message if code[:2] in QUOTABLE_CLASSES else "details withheld: they may quote data"


def _tune_socket(connection: Any, read_timeout_s: float) -> None:
    """pg8000 leaves Nagle on (a statement after a large write can stall ~40 ms over TCP) and
    keeps the connect timeout for every read; a FETCH may run up to the statement timeout."""
    sock = getattr(connection, "_usock", None)
    if not isinstance(sock, socket.socket):
        return
    sock.settimeout(read_timeout_s)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _connect_args(dsn: str, timeout_s: float, application_name: str) -> dict[str, Any]:
    parts = urlsplit(dsn)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ValueError("the PostgreSQL source needs a postgresql:// DSN")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    port = parts.port or 5432
    socket_dir = query.get("host")
    sslmode = query.get("sslmode", "disable")
    ssl_context: ssl.SSLContext | None = None
    if sslmode in {"require", "verify-ca", "verify-full"}:
        ssl_context = ssl.create_default_context(cafile=query.get("sslrootcert"))
        if sslmode != "verify-full":
            ssl_context.check_hostname = False
        if sslmode == "require":
            ssl_context.verify_mode = ssl.CERT_NONE
    elif sslmode not in {"disable", "allow", "prefer"}:
        raise ValueError(f"unsupported sslmode {sslmode!r}")
    return {
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password) if parts.password else None,
        "host": parts.hostname or "localhost",
        "port": port,
        "database": unquote(parts.path.lstrip("/")) or None,
        "unix_sock": f"{socket_dir}/.s.PGSQL.{port}" if socket_dir else None,
        "ssl_context": ssl_context,
        "timeout": timeout_s,
        "application_name": application_name,
        "tcp_keepalive": True,
    }


# One round trip: each row is (kind, subject, detail); kind 'problem' fails the self-test.
# $1 powerful built-in roles, $2 allowlisted tables quoted and $3 the same as plain names,
# $4 functions that reach outside the database.
_CATALOG_QUERY = """
WITH me AS (
    SELECT r.oid, r.rolname FROM pg_roles AS r
    WHERE pg_has_role(current_user, r.oid, 'MEMBER')
)
SELECT 'problem', 'role ' || r.rolname,
       concat_ws(', ',
           CASE WHEN r.rolsuper THEN 'is a superuser' END,
           CASE WHEN r.rolcreaterole THEN 'can create roles' END,
           CASE WHEN r.rolcreatedb THEN 'can create databases' END,
           CASE WHEN r.rolreplication THEN 'has replication' END,
           CASE WHEN r.rolbypassrls THEN 'bypasses row security' END)
FROM pg_roles AS r JOIN me ON me.oid = r.oid
WHERE r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls
UNION ALL
SELECT 'problem', 'role ' || current_user, 'is a member of ' || me.rolname
FROM me WHERE me.rolname = ANY(CAST($1 AS text[]))
UNION ALL
SELECT 'problem', 'role ' || me.rolname,
       'has ' || p.privilege || ' on ' || t.name
FROM me
CROSS JOIN unnest(CAST($2 AS text[]), CAST($3 AS text[])) AS t(quoted, name)
CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'])
    AS p(privilege)
WHERE to_regclass(t.quoted) IS NOT NULL
  AND (has_table_privilege(me.oid, to_regclass(t.quoted), p.privilege)
       OR (p.privilege IN ('INSERT', 'UPDATE', 'REFERENCES')
           AND has_any_column_privilege(me.oid, to_regclass(t.quoted), p.privilege)))
UNION ALL
SELECT 'problem', 'role ' || current_user, 'can create objects in schema ' || n.nspname
FROM pg_namespace AS n
WHERE has_schema_privilege(current_user, n.oid, 'CREATE')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
UNION ALL
SELECT 'problem', 'role ' || current_user, 'can create schemas in this database'
WHERE has_database_privilege(current_database(), 'CREATE')
UNION ALL
SELECT 'problem', 'role ' || current_user, 'can execute ' || p.oid::regprocedure::text
FROM pg_proc AS p
WHERE p.proname = ANY(CAST($4 AS text[])) AND has_function_privilege(p.oid, 'EXECUTE')
UNION ALL
SELECT 'warning', 'role ' || current_user,
       'may create temporary tables (REVOKE TEMPORARY ON DATABASE … FROM PUBLIC to forbid)'
WHERE has_database_privilege(current_database(), 'TEMPORARY')
UNION ALL
SELECT 'warning', 'role ' || current_user, 'cannot read allowlisted table ' || t.name
FROM unnest(CAST($2 AS text[]), CAST($3 AS text[])) AS t(quoted, name)
WHERE to_regclass(t.quoted) IS NOT NULL
  AND NOT has_table_privilege(to_regclass(t.quoted), 'SELECT')
UNION ALL
SELECT 'warning', 'role ' || current_user,
       'default_transaction_read_only is off (ALTER ROLE … SET default_transaction_read_only = on)'
WHERE current_setting('default_transaction_read_only') <> 'on'
"""
