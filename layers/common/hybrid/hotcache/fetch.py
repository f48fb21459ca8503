"""Running one cache query through the tenant's connector, over either transport, and
sorting what can go wrong into the caller's fault (`QueryRefusedError`, never cached) and
the connector's or source's (`SourceUnavailableError`, where a cached copy may be served).

- tunnel: the signed ``POST /v1/query``; the page arrives only once its trailer verified.
- relay: a ``query`` relay job is queued and the connector woken; its chunks are stored by
  connector-relay as they arrive (`hybrid.connectors.relay.record_chunk`) and read back
  here once the job is done, then discarded. The wait is bounded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from hybrid import log
from hybrid.connectors import registry
from hybrid.connectors import relay as relay_jobs
from hybrid.connectors.protocol import ProtocolError, QueryRequest, ResultChunk
from hybrid.db import Transaction
from hybrid.errors import ValidationFailedError
from hybrid.hotcache.errors import QueryRefusedError, SourceUnavailableError

logger = log.get_logger("hybrid.hotcache")

RELAY_CHUNK_ROWS = 5000
_POLL_FIRST_S = 0.02
_POLL_MAX_S = 0.2
# Codes of connector errors that are the query's fault (PROTOCOL.md, connector.service).
CALLER_CODES = frozenset(
    {
        "query_rejected",
        "bad_page_token",
        "bad_masking",
        "pii_detected",
        "result_too_large",
        "query_failed",
        "reserved_column",
        "unknown_column",
        "unknown_source",
    }
)
_CALLER_STATUSES = frozenset({400, 404, 413, 422})
# Warm instances remember a found target this long (a connector's tenant never changes; a
# deleted one keeps answering from the cache for at most this long), saving the hit path a
# PostgreSQL transaction. Only targets that exist are remembered.
TARGET_MEMO_S = 10.0
_TARGET_MEMO_MAX = 4096
_target_memo: dict[tuple[str, str, str], tuple[float, Target]] = {}
_target_memo_lock = threading.Lock()


@dataclass(frozen=True)
class Target:
    """The connector and source a query runs on, checked to belong to the tenant."""

    tenant_id: str
    connector_id: str
    source: str
    transport: str
    endpoint: str | None
    engine: str


@dataclass
class Fetched:
    """A result as the connector sent it (rows already masked there)."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    truncated: bool
    cursor: list[Any] | None
    wire_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)


def remembered_target(services: Any, tenant_id: str, connector_id: str, source: str) -> Target:
    """`find_target`, answered from the instance's memo while it is recent."""
    key = (tenant_id, connector_id, source)
    now = time.monotonic()
    found = _target_memo.get(key)
    if found is not None and found[0] > now:
        return found[1]
    with services.read() as tx:
        target = find_target(tx, tenant_id, connector_id, source)
    with _target_memo_lock:
        if len(_target_memo) >= _TARGET_MEMO_MAX:
            _target_memo.clear()
        _target_memo[key] = (now + TARGET_MEMO_S, target)
    return target


def forget_targets() -> None:
    """Empty the memo (tests that change connectors under a warm instance)."""
    with _target_memo_lock:
        _target_memo.clear()


def find_target(tx: Transaction, tenant_id: str, connector_id: str, source: str) -> Target:
    """404 unless the connector is the tenant's; 422 when it has no such source."""
    row = tx.one(
        "SELECT c.transport, c.endpoint, s.engine "
        "FROM connectors c LEFT JOIN connector_sources s "
        "ON s.connector_id = c.id AND s.name = :source "
        "WHERE c.id = :id AND c.tenant_id = :tenant_id AND c.deleted_at IS NULL",
        id=connector_id,
        tenant_id=tenant_id,
        source=source,
    )
    if row is None:
        raise registry.ConnectorNotFoundError()
    if row["engine"] is None:
        raise ValidationFailedError("source: the connector has no such source")
    return Target(
        tenant_id=tenant_id,
        connector_id=connector_id,
        source=source,
        transport=row["transport"],
        endpoint=row["endpoint"],
        engine=row["engine"],
    )


def classify(code: str | None, status: int | None, message: str) -> Exception:
    """A connector's error as ours: the caller's fault, or the connector's/source's."""
    if (code and code in CALLER_CODES) or (not code and status in _CALLER_STATUSES):
        return QueryRefusedError(
            f"the connector refused the query ({code or status}): {message}"[:400],
            code=code or "query_refused",
        )
    return SourceUnavailableError(f"the connector could not run the query ({code or status})")


def fetch(
    services: Any,
    target: Target,
    request: QueryRequest,
    *,
    timeout_s: float,
) -> Fetched:
    """Run `request` on the target's connector within `timeout_s`."""
    with services.read() as tx:
        secret = registry.connector_secret(tx, services.secret_box, target.connector_id)
    if target.transport == "tunnel":
        return _fetch_tunnel(target, secret, request, timeout_s)
    return _fetch_relay(services, target, request, timeout_s)


def _fetch_tunnel(target: Target, secret: str, request: QueryRequest, timeout_s: float) -> Fetched:
    from hybrid.connectors.tunnel import (
        ConnectorProtocolError,
        ConnectorQueryError,
        ConnectorUnavailableError,
        TunnelClient,
    )

    if not target.endpoint:
        raise SourceUnavailableError("the tunnel connector has no endpoint")
    client = TunnelClient(target.endpoint, secret, timeout_s=max(0.5, timeout_s))
    try:
        page = client.query(request)
    except ConnectorQueryError as exc:
        raise classify(exc.code, exc.status, str(exc)) from None
    except (ConnectorUnavailableError, ConnectorProtocolError) as exc:
        raise SourceUnavailableError(str(exc)[:300]) from None
    columns = page.trailer.get("columns")
    if not isinstance(columns, list):
        columns = list(page.rows[0]) if page.rows else []
    return Fetched(
        columns=tuple(str(c) for c in columns),
        rows=page.rows,
        truncated=page.truncated,
        cursor=page.cursor,
        wire_bytes=page.wire_bytes,
    )


def _fetch_relay(services: Any, target: Target, request: QueryRequest, timeout_s: float) -> Fetched:
    with services.write() as tx:
        last_seen = tx.scalar(
            "SELECT last_seen_at FROM connectors WHERE id = :id", id=target.connector_id
        )
        silent = not relay_jobs.polled_recently(last_seen, datetime.now(timezone.utc))
        if not silent:
            job_id = relay_jobs.enqueue(
                tx,
                connector_id=target.connector_id,
                tenant_id=target.tenant_id,
                kind="query",
                payload={"query": request.to_json(), "chunk_rows": RELAY_CHUNK_ROWS},
            )
    if silent:
        raise SourceUnavailableError("the relay connector has not polled recently")
    relay_jobs.wake(services.redis, target.connector_id)
    try:
        result = wait_for_job(services.read, job_id, deadline=time.monotonic() + timeout_s)
    finally:
        with services.write() as tx:
            relay_jobs.discard(tx, job_id)
    if result.status == "done":
        return assemble(result.chunks)
    error = (result.result or {}).get("error") or {}
    if result.status == "failed" and error:
        raise classify(str(error.get("code") or ""), None, str(error.get("message") or ""))
    raise SourceUnavailableError("the relay connector did not answer in time")


def wait_for_job(read: Callable[[], Any], job_id: str, *, deadline: float) -> relay_jobs.JobResult:
    """Poll the job until it is closed or `deadline` (monotonic) passes."""
    delay = _POLL_FIRST_S
    while True:
        with read() as tx:
            result = relay_jobs.job_result(tx, job_id)
        if result.status not in ("pending", "leased"):
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            return result
        time.sleep(min(delay, left))
        delay = min(delay * 2, _POLL_MAX_S)


def assemble(bodies: Sequence[bytes]) -> Fetched:
    """The rows of a relay query job's stored chunks (one attempt, in order)."""
    rows: list[dict[str, Any]] = []
    columns: tuple[str, ...] = ()
    last: ResultChunk | None = None
    wire = 0
    for body in bodies:
        try:
            chunk = ResultChunk.from_json(json.loads(body))
        except (ProtocolError, ValueError):
            raise SourceUnavailableError("a stored relay chunk is malformed") from None
        wire += len(body)
        columns = chunk.columns or columns
        rows.extend(chunk.rows)
        last = chunk
    if last is None or not last.done:
        raise SourceUnavailableError("the relay job ended without its last chunk")
    return Fetched(
        columns=columns,
        rows=rows,
        truncated=last.truncated,
        cursor=last.cursor,
        wire_bytes=wire,
    )
