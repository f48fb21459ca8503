"""The cloud side of the relay transport: jobs queued for outbound-only connectors, their
leases, the ledger of result chunks, and the connectors' heartbeats.

A job is leased to one connector process (`X-Connector-Instance`) at a time. Each lease is a
new `attempt`; chunks are accepted only from the current attempt, in `seq` order, and a chunk
seen before is a duplicate (idempotent by job and seq). A lease runs out after `LEASE_S`
without a chunk, or at once when another process of the same connector polls (the connector
restarted), and the job is handed out again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hybrid import log
from hybrid.auth.keys import new_id
from hybrid.cache import CacheError, redis_errors
from hybrid.db import Transaction
from hybrid.errors import InvalidStateError, ResourceNotFoundError

LEASE_S = 60
# Every poll is a heartbeat; a relay connector silent for longer than this is taken as gone.
SILENT_AFTER_S = 90
_WAKE_TTL_S = 120


class RelayJobNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("relay job not found")


class ChunkRejectedError(InvalidStateError):
    """The chunk belongs to an older attempt, is out of order, or its job is closed: the
    connector drops the job (the cloud hands it out again from what it stored)."""


_COLUMNS = (
    "id, connector_id, tenant_id, kind, execution_id, fence, payload, status, attempt, "
    "next_seq, leased_by, leased_until, created_at"
)


@dataclass(frozen=True)
class RelayJobRow:
    id: str
    connector_id: str
    tenant_id: str
    kind: str
    execution_id: str | None
    fence: int | None
    payload: dict[str, Any]
    status: str
    attempt: int
    next_seq: int
    leased_by: str | None
    leased_until: datetime | None
    created_at: datetime


def _from_row(row: dict[str, Any]) -> RelayJobRow:
    payload = row["payload"]
    return RelayJobRow(
        **{**row, "payload": json.loads(payload) if isinstance(payload, str) else payload}
    )


def polled_recently(last_seen: datetime | None, now: datetime) -> bool:
    """Whether a relay connector last seen at `last_seen` still counts as polling at `now`."""
    return last_seen is not None and now - last_seen <= timedelta(seconds=SILENT_AFTER_S)


def enqueue(
    tx: Transaction,
    *,
    connector_id: str,
    tenant_id: str,
    kind: str,
    execution_id: str | None = None,
    fence: int | None = None,
    payload: dict[str, Any] | None = None,
) -> str:
    """Queue a job; call `wake` after the commit so a waiting poll picks it up at once."""
    job_id = new_id("rjb")
    tx.execute(
        "INSERT INTO relay_jobs (id, connector_id, tenant_id, kind, execution_id, fence, "
        "payload, status) VALUES (:id, :connector_id, :tenant_id, :kind, :execution_id, :fence, "
        "CAST(:payload AS jsonb), 'pending')",
        id=job_id,
        connector_id=connector_id,
        tenant_id=tenant_id,
        kind=kind,
        execution_id=execution_id,
        fence=fence,
        payload=json.dumps(payload or {}),
    )
    return job_id


def heartbeat(
    tx: Transaction, connector_id: str, *, version: str | None, instance: str | None, spool: int
) -> None:
    tx.execute(
        "UPDATE connectors SET last_seen_at = now(), agent_version = :version, "
        "agent_instance = :instance, spool_depth = :spool WHERE id = :id",
        id=connector_id,
        version=(version or "")[:64] or None,
        instance=(instance or "")[:64] or None,
        spool=spool,
    )


def lease(
    tx: Transaction, connector_id: str, *, instance: str, limit: int = 1, lease_s: int = LEASE_S
) -> list[RelayJobRow]:
    """Hand out the oldest jobs that are pending, whose lease ran out, or that another process
    of this connector held (it restarted)."""
    rows = tx.rows(
        f"UPDATE relay_jobs SET status = 'leased', attempt = attempt + 1, leased_by = :instance, "
        f"leased_until = now() + make_interval(secs => :lease_s), updated_at = now() "
        f"WHERE id IN (SELECT id FROM relay_jobs WHERE connector_id = :connector_id "
        f"AND (status = 'pending' OR (status = 'leased' AND (leased_until < now() "
        f"OR leased_by IS DISTINCT FROM :instance))) "
        f"ORDER BY created_at, id LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
        connector_id=connector_id,
        instance=instance,
        lease_s=lease_s,
        limit=limit,
    )
    return [_from_row(row) for row in rows]


def lock_job(tx: Transaction, job_id: str, connector_id: str) -> RelayJobRow:
    row = tx.one(
        f"SELECT {_COLUMNS} FROM relay_jobs WHERE id = :id AND connector_id = :connector_id "
        "FOR UPDATE",
        id=job_id,
        connector_id=connector_id,
    )
    if row is None:
        raise RelayJobNotFoundError()
    return _from_row(row)


def check_chunk(tx: Transaction, job: RelayJobRow, *, seq: int, attempt: int) -> bool:
    """True when the chunk is new and next in line; False for a duplicate of a stored one;
    ChunkRejectedError otherwise."""
    if seq < job.next_seq:
        stored = tx.scalar(
            "SELECT attempt FROM relay_chunks WHERE job_id = :id AND seq = :seq",
            id=job.id,
            seq=seq,
        )
        if stored == attempt:
            return False
        raise ChunkRejectedError("the chunk belongs to an earlier attempt of this job")
    if job.status != "leased":
        raise ChunkRejectedError("the job is no longer open")
    if attempt != job.attempt:
        raise ChunkRejectedError("the chunk belongs to an earlier attempt of this job")
    if seq != job.next_seq:
        raise ChunkRejectedError(f"chunk out of order: expected seq {job.next_seq}")
    return True


def record_chunk(
    tx: Transaction,
    job: RelayJobRow,
    *,
    seq: int,
    attempt: int,
    row_count: int,
    body: bytes | None = None,
    lease_s: int = LEASE_S,
) -> None:
    """Ledger the chunk and move the job on (its lease is extended: the connector is alive)."""
    tx.execute(
        "INSERT INTO relay_chunks (job_id, seq, attempt, row_count, body) "
        "VALUES (:id, :seq, :attempt, :row_count, :body)",
        id=job.id,
        seq=seq,
        attempt=attempt,
        row_count=row_count,
        body=body,
    )
    tx.execute(
        "UPDATE relay_jobs SET next_seq = :next, updated_at = now(), "
        "leased_until = now() + make_interval(secs => :lease_s) WHERE id = :id",
        id=job.id,
        next=seq + 1,
        lease_s=lease_s,
    )


def close(
    tx: Transaction, job_id: str, *, status: str, result: dict[str, Any] | None = None
) -> None:
    tx.execute(
        "UPDATE relay_jobs SET status = :status, result = CAST(:result AS jsonb), "
        "leased_until = NULL, updated_at = now() "
        "WHERE id = :id AND status IN ('pending', 'leased')",
        id=job_id,
        status=status,
        result=json.dumps(result) if result is not None else None,
    )


def requeue(tx: Transaction, job_id: str) -> None:
    """The job has more to do (the next page): hand it out again."""
    tx.execute(
        "UPDATE relay_jobs SET status = 'pending', leased_by = NULL, leased_until = NULL, "
        "updated_at = now() WHERE id = :id",
        id=job_id,
    )


def prune(tx: Transaction, *, older_than_s: int) -> int:
    """Delete finished relay jobs (and, by cascade, their chunk ledger) older than that."""
    return tx.execute(
        "DELETE FROM relay_jobs WHERE status IN ('done', 'failed', 'cancelled') "
        "AND updated_at < now() - make_interval(secs => :seconds)",
        seconds=older_than_s,
    )


# --- reading the result of a query job ----------------------------------------------------------


@dataclass(frozen=True)
class JobResult:
    """Where a `query` job stands: its status, its closing `result` and, once it is done, the
    stored chunk bodies of its last attempt in order (an attempt handed to a restarted
    connector runs the query again from its first row)."""

    status: str
    result: dict[str, Any] | None
    chunks: tuple[bytes, ...] = ()


def job_result(tx: Transaction, job_id: str) -> JobResult:
    row = tx.one("SELECT status, result FROM relay_jobs WHERE id = :id", id=job_id)
    if row is None:
        raise RelayJobNotFoundError()
    result = row["result"]
    result = json.loads(result) if isinstance(result, str) else result
    if row["status"] != "done":
        return JobResult(row["status"], result)
    stored = tx.rows(
        "SELECT attempt, body FROM relay_chunks WHERE job_id = :id AND body IS NOT NULL "
        "ORDER BY seq",
        id=job_id,
    )
    last = stored[-1]["attempt"] if stored else None
    bodies = tuple(bytes(chunk["body"]) for chunk in stored if chunk["attempt"] == last)
    return JobResult(row["status"], result, bodies)


def discard(tx: Transaction, job_id: str) -> None:
    """Drop a query job's stored rows once read or given up on; a job still open is cancelled
    first, so the connector's next chunk gets a 409 and it stops producing."""
    close(tx, job_id, status="cancelled")
    tx.execute("DELETE FROM relay_chunks WHERE job_id = :id", id=job_id)


# --- waking a waiting poll --------------------------------------------------------------------


def _wake_key(connector_id: str) -> str:
    return f"hybrid:relay:{{{connector_id}}}:wake"


def wake(redis: Callable[[], Any], connector_id: str) -> None:
    """Tell a poll waiting for this connector that a job is queued (best effort: a poll
    without the signal still finds the job on its next look)."""
    try:
        with redis_errors():
            client = redis()
            pipe = client.pipeline(transaction=False)
            pipe.rpush(_wake_key(connector_id), b"1")
            pipe.expire(_wake_key(connector_id), _WAKE_TTL_S)
            pipe.execute()
    except CacheError as exc:
        log.get_logger("hybrid.relay").warning(
            "relay wake-up not sent", error_type=type(exc).__name__
        )


def wait_for_wake(redis: Callable[[], Any], connector_id: str, timeout_s: float) -> None:
    """Block until a job is queued for the connector or `timeout_s` passes."""
    if timeout_s <= 0:
        return
    try:
        with redis_errors():
            # Short blocking slices: the client's socket timeout is a couple of seconds.
            client = redis()
            client.blpop([_wake_key(connector_id)], timeout=max(0.05, min(timeout_s, 1.5)))
            client.delete(_wake_key(connector_id))
    except CacheError:
        time.sleep(min(timeout_s, 0.5))
