"""Running a query for either transport: guard, source, masking, egress scan, page tokens and
(low-bandwidth) skipping of unchanged rows, streamed chunk by chunk.

`QueryService.start` does everything that can refuse a query before a row is produced (the
source's self-test, the guard, the page token, the masking policies, opening the cursor and
its first batch), so a transport can still answer with an error status; `QueryRun.chunks`
then yields masked, scanned chunks of rows. Nothing holds more than one chunk of rows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from connector import __version__
from connector.config import WILDCARD, ConnectorConfig, SourceConfig
from connector.digests import DigestStore, Entry, row_key
from connector.pagetoken import PageTokenError, PageTokens, query_hash
from connector.sources import Rows, SelfTestReport, Source
from connector.sources.errors import (
    LimitExceededError,
    QueryFailedError,
    SourceError,
    SourceUnavailableError,
    UnsafeSourceError,
)
from connector.sqlguard import QueryRejectedError, SqlDialect, check_query, normalise_table_name
from hybrid.connectors.protocol import RESERVED_PREFIX, QueryRequest, dumps
from hybrid.masking import (
    ColumnPolicy,
    MaskingPolicy,
    MaskingPolicyError,
    PiiLeakError,
    assert_clean,
)

logger = logging.getLogger(__name__)

# The sources' own row cap is lifted: pages are capped here (a later page re-reads and skips
# the earlier ones, so the source must be able to read past one page).
MAX_SCAN_ROWS = 100_000_000
RETRY_AFTER_S = 5
RECONNECT_PAUSE_S = 0.5
# How strict a column policy is, when two tables of one query list the same column.
_STRICTNESS = {
    "drop": 0,
    "pseudonym": 1,
    "mask_id_card": 2,
    "mask_bank_card": 2,
    "mask_phone": 2,
    "mask_email": 2,
    "mask_name": 2,
    "detect": 3,
    "keep": 4,
}


class QueryFailure(Exception):
    """A query refused or failed: `status` for a transport that has not answered yet, `code`
    and `message` (no SQL, no parameters, no row values) for everyone."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.sqlstate = sqlstate

    def to_error(self) -> dict[str, str]:
        error = {"code": self.code, "message": self.message}
        if self.sqlstate:
            error["sqlstate"] = self.sqlstate
        return error


def failure_from(exc: BaseException) -> QueryFailure:
    """The `QueryFailure` of an error raised while a query ran."""
    if isinstance(exc, QueryFailure):
        return exc
    if isinstance(exc, QueryRejectedError):
        return QueryFailure(422, "query_rejected", exc.reason)
    if isinstance(exc, PageTokenError):
        return QueryFailure(422, "bad_page_token", str(exc))
    if isinstance(exc, MaskingPolicyError):
        return QueryFailure(422, "bad_masking", f"masking: {exc}")
    if isinstance(exc, PiiLeakError):
        return QueryFailure(422, "pii_detected", str(exc))
    if isinstance(exc, UnsafeSourceError):
        return QueryFailure(
            503, "source_unsafe", "the source failed its self-test", retry_after=RETRY_AFTER_S
        )
    if isinstance(exc, SourceUnavailableError):
        return QueryFailure(503, "source_unavailable", str(exc), retry_after=RETRY_AFTER_S)
    if isinstance(exc, LimitExceededError):
        if exc.kind == "time":
            return QueryFailure(504, "timeout", str(exc))
        return QueryFailure(422, "result_too_large", str(exc))
    if isinstance(exc, QueryFailedError):
        return QueryFailure(422, "query_failed", exc.message, sqlstate=exc.sqlstate)
    if isinstance(exc, SourceError):
        return QueryFailure(500, "source_error", type(exc).__name__)
    return QueryFailure(500, "internal", "the connector failed to run the query")


def utc_now_text() -> str:
    """RFC 3339 UTC time, seconds precision."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Stats:
    """What left the connector since it started (thread-safe counters)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows_sent = 0
        self.bytes_sent = 0
        self.chunks_sent = 0
        self.queries = 0

    def sent(self, *, rows: int = 0, wire_bytes: int = 0, chunks: int = 0) -> None:
        with self._lock:
            self.rows_sent += rows
            self.bytes_sent += wire_bytes
            self.chunks_sent += chunks

    def query(self) -> None:
        with self._lock:
            self.queries += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "rows_sent": self.rows_sent,
                "bytes_sent": self.bytes_sent,
                "chunks_sent": self.chunks_sent,
                "queries": self.queries,
            }


@dataclass(frozen=True)
class Chunk:
    """One chunk of a page: `rows` to send (masked, scanned), `skipped` unchanged rows not
    sent, `read` = both, `cursor` = the cursor columns of the page's last row so far, and the
    low-bandwidth digests to stage until the chunk is delivered."""

    rows: list[dict[str, Any]]
    skipped: int
    read: int
    cursor: list[Any] | None
    last: bool
    digests: tuple[Entry, ...] = ()


def build_source(config: SourceConfig) -> Source:
    """The source object of one configured database (connections open lazily)."""
    if config.engine == "postgresql":
        from connector.sources.postgres import PostgresSource

        return PostgresSource(
            config.url,
            allowed_tables=config.allowed_tables,
            schema=config.schema,
            statement_timeout_ms=config.statement_timeout_ms,
            max_rows=MAX_SCAN_ROWS,
            max_bytes=config.max_bytes,
            pool_size=config.pool_size,
        )
    from connector.sources.mysql import MySQLSource

    return MySQLSource(
        config.url,
        allowed_tables=config.allowed_tables,
        database=config.schema,
        statement_timeout_ms=config.statement_timeout_ms,
        max_rows=MAX_SCAN_ROWS,
        max_bytes=config.max_bytes,
        pool_size=config.pool_size,
    )


def dialect_of(config: SourceConfig) -> SqlDialect:
    return "postgres" if config.engine == "postgresql" else "mysql"


def resolve_pseudonym_key(config: ConnectorConfig) -> bytes:
    """The configured pseudonym key, else the one kept in the data directory, else a new one
    written there (0600). It never leaves the connector: the cloud cannot reverse pseudonyms."""
    if config.pseudonym_key is not None:
        return config.pseudonym_key
    path = config.pseudonym_key_path
    try:
        key = path.read_bytes()
        if len(key) >= 16:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    logger.warning(
        "generated a pseudonym key in the data directory; back it up or set "
        "CONNECTOR_PSEUDONYM_KEY (pseudonyms change if it is lost)"
    )
    return key


class _SourceState:
    def __init__(self, config: SourceConfig, source: Source, key: bytes) -> None:
        self.config = config
        self.source = source
        self.dialect = dialect_of(config)
        self.verified = False
        self.unsafe: UnsafeSourceError | None = None
        self.report: SelfTestReport | None = None
        self.lock = threading.Lock()
        self.policies: dict[str, MaskingPolicy] = {}
        for table, policy_config in config.masking.items():
            name = table if table == WILDCARD else self.table_name(table)
            self.policies[name] = MaskingPolicy.from_config(policy_config, pseudonym_key=key)

    def table_name(self, table: str) -> str:
        return normalise_table_name(table, dialect=self.dialect, default_schema=self.config.schema)


@dataclass
class _Policy:
    columns: dict[str, ColumnPolicy] = field(default_factory=dict)
    unlisted: str = "detect"


class QueryService:
    """The configured sources and everything a query needs; shared by the transport threads.

    `on_unsafe` is called (once) when a source's self-test finds it can write after startup
    (the process must then stop, as it would have at startup).
    """

    def __init__(
        self,
        config: ConnectorConfig,
        *,
        sources: Mapping[str, Source] | None = None,
        pseudonym_key: bytes | None = None,
        digests: DigestStore | None = None,
        on_unsafe: Callable[[UnsafeSourceError], None] | None = None,
    ) -> None:
        self.config = config
        self.stats = Stats()
        self._key = pseudonym_key if pseudonym_key is not None else resolve_pseudonym_key(config)
        self._tokens = PageTokens(config.secret)
        self.digests = digests
        if digests is None and config.low_bandwidth:
            self.digests = DigestStore(config.digest_path)
        self.on_unsafe = on_unsafe
        built = dict(sources or {})
        self._sources: dict[str, _SourceState] = {}
        for name, source_config in config.sources.items():
            source = built.get(name) or build_source(source_config)
            self._sources[name] = _SourceState(source_config, source, self._key)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(self._sources)

    def source(self, name: str) -> Source:
        return self._sources[name].source

    @property
    def ready(self) -> bool:
        """Every source passed its self-test (what ``/healthz`` reports)."""
        return all(state.verified for state in self._sources.values())

    def startup_self_test(self) -> dict[str, SelfTestReport | SourceUnavailableError]:
        """Each source's self-test. Raises `UnsafeSourceError` (every finding, each prefixed
        with its source) when any source can write; a source that cannot be reached is
        reported and tested again when it is first used or by `verify_pending`."""
        results: dict[str, SelfTestReport | SourceUnavailableError] = {}
        problems: list[str] = []
        for name, state in self._sources.items():
            try:
                results[name] = self._self_test(state)
            except UnsafeSourceError as exc:
                problems += [f"{name}: {problem}" for problem in exc.problems]
            except SourceUnavailableError as exc:
                logger.warning("source self-test postponed source=%s error=%s", name, exc)
                results[name] = exc
        if problems:
            raise UnsafeSourceError(tuple(problems))
        return results

    def verify_pending(self) -> None:
        """Run the self-test of sources that could not be reached so far."""
        for name, state in self._sources.items():
            if not state.verified and state.unsafe is None:
                try:
                    self._ensure_verified(state)
                except QueryFailure as exc:
                    logger.info("source still unverified source=%s reason=%s", name, exc.code)

    def _self_test(self, state: _SourceState) -> SelfTestReport:
        with state.lock:
            if state.report is not None:
                return state.report
            try:
                report = state.source.self_test()
            except UnsafeSourceError as exc:
                state.unsafe = exc
                raise
            state.report, state.verified = report, True
            for warning in report.warnings:
                logger.warning("source self-test source=%s warning=%s", state.config.name, warning)
            logger.info("source self-test passed source=%s", state.config.name)
            return report

    def _ensure_verified(self, state: _SourceState) -> None:
        if state.verified:
            return
        if state.unsafe is not None:
            raise failure_from(state.unsafe)
        try:
            self._self_test(state)
        except UnsafeSourceError as exc:
            logger.critical(
                "source failed its self-test source=%s problems=%s",
                state.config.name,
                "; ".join(exc.problems),
            )
            if self.on_unsafe is not None:
                self.on_unsafe(exc)
            raise failure_from(exc) from None
        except SourceError as exc:
            raise failure_from(exc) from None

    def close(self) -> None:
        for state in self._sources.values():
            state.source.close()
        if self.digests is not None:
            self.digests.close()

    # --- health -------------------------------------------------------------------------------

    def health(self, *, transport: str, spool_depth: int = 0) -> dict[str, Any]:
        """The body of ``/v1/health`` (and of a relay ping's answer)."""
        sources = []
        for name, state in self._sources.items():
            entry: dict[str, Any] = {"name": name, "ok": False, "latency_ms": None, "error": None}
            try:
                entry["latency_ms"] = round(state.source.ping(), 1)
                entry["ok"] = state.verified
                if not state.verified:
                    entry["error"] = "self-test not passed yet"
            except SourceError as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"[:200]
            sources.append(entry)
        return {
            "status": "ok" if all(s["ok"] for s in sources) else "degraded",
            "version": __version__,
            "time": utc_now_text(),
            "transport": transport,
            "low_bandwidth": self.config.low_bandwidth,
            "spool_depth": spool_depth,
            "sources": sources,
            "stats": self.stats.snapshot(),
        }

    # --- queries ------------------------------------------------------------------------------

    def start(self, request: QueryRequest, *, request_id: str = "") -> QueryRun:
        """Everything up to the first batch of rows; raises `QueryFailure`."""
        state = self._sources.get(request.source)
        if state is None:
            raise QueryFailure(404, "unknown_source", "no source of that name")
        self._ensure_verified(state)
        self.stats.query()
        try:
            guarded = check_query(
                request.sql,
                dialect=state.dialect,
                allowed_tables=state.config.allowed_tables,
                default_schema=state.config.schema,
            )
            bound = query_hash(request.source, request.sql, request.params)
            offset = self._tokens.open(request.page_token, bound) if request.page_token else 0
            policy = self._policy(state, guarded.tables, request.masking)
        except (QueryRejectedError, PageTokenError, MaskingPolicyError) as exc:
            raise failure_from(exc) from None
        page_rows = min(request.max_rows or state.config.max_rows, state.config.max_rows)
        # Only a relay chunk's 200 says the cloud stored the rows; the end of a tunnel stream
        # does not (the pull function may die before it commits), so a tunnel resends them.
        skip = bool(
            self.config.low_bandwidth
            and self.config.transport == "relay"
            and request.key_columns
            and self.digests
        )
        run = QueryRun(
            service=self,
            state=state,
            request=request,
            request_id=request_id,
            tables=guarded.tables,
            policy=policy,
            offset=offset,
            page_rows=page_rows,
            bound_to=bound,
            skip_unchanged=skip,
        )
        run.open()
        return run

    def _policy(
        self, state: _SourceState, tables: frozenset[str], requested: Mapping[str, Any] | None
    ) -> MaskingPolicy:
        """The connector's policy for the tables (strictest per column when several list
        it; ``*`` for tables without their own), plus the request's columns it does not list;
        unlisted columns follow the connector."""
        merged = _Policy()
        found = [state.policies.get(table) for table in sorted(tables)] or [None]
        for policy in found:
            if policy is None:
                policy = state.policies.get(WILDCARD)
            if policy is None:
                continue
            if policy.unlisted == "drop":
                merged.unlisted = "drop"
            for name, column in policy.columns.items():
                key = _casefold_key(merged.columns, name) or name
                current = merged.columns.get(key)
                if current is None or _STRICTNESS[column.policy] < _STRICTNESS[current.policy]:
                    merged.columns[key] = column
        if requested:
            extra = MaskingPolicy.from_config(requested, pseudonym_key=self._key)
            for name, column in extra.columns.items():
                if _casefold_key(merged.columns, name) is None:
                    merged.columns[name] = column
        return MaskingPolicy(
            merged.columns,
            unlisted="drop" if merged.unlisted == "drop" else "detect",
            pseudonym_key=self._key,
        )

    def page_token(self, offset: int, bound_to: str) -> str:
        return self._tokens.seal(offset, bound_to)


def _casefold_key(columns: Mapping[str, Any], name: str) -> str | None:
    folded = name.casefold()
    for key in columns:
        if key.casefold() == folded:
            return key
    return None


class QueryRun:
    """One page of one query. `chunks` streams it; the totals are final once it ended."""

    def __init__(
        self,
        *,
        service: QueryService,
        state: _SourceState,
        request: QueryRequest,
        request_id: str,
        tables: frozenset[str],
        policy: MaskingPolicy,
        offset: int,
        page_rows: int,
        bound_to: str,
        skip_unchanged: bool,
    ) -> None:
        self.request = request
        self.request_id = request_id
        self.tables = tables
        self.columns: tuple[str, ...] = ()
        self.row_count = 0
        self.skipped = 0
        self.read = 0
        self.truncated = False
        self.next_page_token: str | None = None
        self.cursor: list[Any] | None = None
        self._service = service
        self._state = state
        self._policy = policy
        self._offset = offset
        self._page_rows = page_rows
        self._bound_to = bound_to
        self._skip_unchanged = skip_unchanged
        self._scope = ""
        self._stream: Rows | None = None
        self._started = time.monotonic()

    def open(self) -> None:
        """Open the cursor (retried once when the source is unavailable) and check the
        result's columns; raises `QueryFailure`."""
        try:
            self._stream = self._open_stream()
            raw_columns = self._stream.columns
            reserved = [c for c in raw_columns if c.startswith(RESERVED_PREFIX)]
            if reserved:
                raise QueryFailure(
                    422, "reserved_column", "column names starting with '$' are reserved"
                )
            self.columns = tuple(self._policy.apply(dict.fromkeys(raw_columns)))
            for kind, names in (
                ("cursor_columns", self.request.cursor_columns),
                ("key_columns", self.request.key_columns),
            ):
                missing = [name for name in names if name not in self.columns]
                if missing:
                    raise QueryFailure(
                        422, "unknown_column", f"{kind}: not among the result's columns"
                    )
        except BaseException as exc:
            self.close()
            if isinstance(exc, QueryFailure | SourceError | QueryRejectedError):
                raise failure_from(exc) from None
            raise
        self._scope = "|".join(
            (
                self.request.source,
                ",".join(sorted(self.tables)),
                hashlib.sha256(dumps(list(self.columns))).hexdigest()[:16],
                ",".join(self.request.key_columns),
            )
        )

    def _open_stream(self) -> Rows:
        source = self._state.source
        row_cap = self._offset + self._page_rows
        try:
            return source.query(self.request.sql, self.request.params, max_rows=row_cap)
        except SourceUnavailableError as exc:
            logger.warning(
                "source unavailable, retrying once source=%s error=%s", self.request.source, exc
            )
        time.sleep(RECONNECT_PAUSE_S)
        return source.query(self.request.sql, self.request.params, max_rows=row_cap)

    def _rows(self) -> Iterator[dict[str, Any]]:
        """The page's rows (earlier pages skipped); a source that drops before any row of
        this page was produced is asked once more."""
        produced = 0
        retried = False
        while True:
            stream = self._stream
            assert stream is not None
            to_skip = self._offset
            try:
                for row in stream:
                    if to_skip:
                        to_skip -= 1
                        continue
                    produced += 1
                    yield row
                return
            except SourceUnavailableError:
                if produced or retried:
                    raise
                retried = True
                stream.close()
                logger.warning("source dropped before the first row, retrying once")
                time.sleep(RECONNECT_PAUSE_S)
                self._stream = self._state.source.query(
                    self.request.sql,
                    self.request.params,
                    max_rows=self._offset + self._page_rows,
                )

    def chunks(self, chunk_rows: int) -> Generator[Chunk, None, None]:
        """Chunks of at most `chunk_rows` rows read; the last has ``last=True`` (an empty
        page is one empty last chunk). Raises `QueryFailure` when the query fails; no row of
        a chunk that failed the egress scan is ever yielded."""
        chunk_rows = max(1, chunk_rows)
        try:
            rows = self._rows()
            batch: list[dict[str, Any]] = []
            following = next(rows, None)
            while True:
                if following is None:
                    yield self._chunk(batch, last=True)
                    break
                batch.append(following)
                following = next(rows, None)
                if len(batch) >= chunk_rows and following is not None:
                    yield self._chunk(batch, last=False)
                    batch = []
        except (QueryFailure, SourceError, QueryRejectedError, PiiLeakError) as exc:
            failure = failure_from(exc)
            logger.warning(
                "query failed source=%s request_id=%s code=%s rows_sent=%d",
                self.request.source,
                self.request_id,
                failure.code,
                self.row_count,
            )
            raise failure from None
        finally:
            self.close()
        logger.info(
            "query done source=%s request_id=%s rows=%d skipped=%d truncated=%s ms=%d",
            self.request.source,
            self.request_id,
            self.row_count,
            self.skipped,
            self.truncated,
            (time.monotonic() - self._started) * 1000,
        )

    def _chunk(self, batch: Sequence[dict[str, Any]], *, last: bool) -> Chunk:
        masked = [self._policy.apply(row) for row in batch]
        assert_clean(masked)
        if masked and self.request.cursor_columns:
            tail = masked[-1]
            self.cursor = [tail.get(name) for name in self.request.cursor_columns]
        send: list[dict[str, Any]] = masked
        entries: list[Entry] = []
        if self._skip_unchanged and masked:
            send, entries = self._unchanged_skipped(masked)
        skipped = len(masked) - len(send)
        self.row_count += len(send)
        self.skipped += skipped
        self.read += len(batch)
        if last:
            stream = self._stream
            self.truncated = bool(stream is not None and stream.truncated)
            if self.truncated:
                offset = self._offset + self.read
                self.next_page_token = self._service.page_token(offset, self._bound_to)
        return Chunk(
            rows=send,
            skipped=skipped,
            read=len(batch),
            cursor=list(self.cursor) if self.cursor is not None else None,
            last=last,
            digests=tuple(entries),
        )

    def _unchanged_skipped(
        self, masked: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[Entry]]:
        store = self._service.digests
        assert store is not None
        names = self.request.key_columns
        keys = [row_key(self._scope, dumps([row.get(n) for n in names])) for row in masked]
        known = store.sent(keys)
        send: list[dict[str, Any]] = []
        entries: list[Entry] = []
        for row, key in zip(masked, keys, strict=True):
            digest = hashlib.sha256(dumps(row)).digest()
            if known.get(key) != digest:
                send.append(row)
                entries.append((key, digest))
        return send, entries

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def trailer_fields(self) -> dict[str, Any]:
        """The page's totals, as the tunnel trailer and the last relay chunk report them."""
        return {
            "row_count": self.row_count,
            "truncated": self.truncated,
            "next_page_token": self.next_page_token,
            "cursor": self.cursor,
            "columns": list(self.columns),
            "skipped": self.skipped,
        }


__all__ = [
    "Chunk",
    "QueryFailure",
    "QueryRun",
    "QueryService",
    "Stats",
    "build_source",
    "failure_from",
    "resolve_pseudonym_key",
    "utc_now_text",
]
