"""Executions of sync jobs: starting one (never two at once), storing each page of pulled rows
with the cursor in the same transaction, and finishing.

Who may write: a job's `fence` grows by one each time someone takes charge of its running
execution (the start, and each later driver of a tunnel pull). Every page is stored under
``SELECT … FROM sync_jobs WHERE id = :id AND fence <= :fence FOR UPDATE``: a holder that lost
its lease and resumes later finds a higher fence, stores nothing and stops
(`StaleFenceError`). The Redis lease (`hybrid.locks`) only decides who should be working.

The position of an execution (where its next page starts, see `hybrid.sync.keyset`) and the
job's cursor (the highest cursor value stored, where the next execution starts minus the
overlap) both move only in the transaction that stores the page's rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hybrid import outbox
from hybrid.alerts.announce import ALERT_TOPIC
from hybrid.auth.keys import new_id
from hybrid.connectors.protocol import QueryRequest
from hybrid.db import Transaction
from hybrid.errors import InvalidStateError, ResourceNotFoundError
from hybrid.ingest.models import validate_records
from hybrid.ingest.pipeline import store_records
from hybrid.sources import ensure_source
from hybrid.sync import keyset
from hybrid.sync import schedule as schedules
from hybrid.sync.jobs import JobPausedError, JobRunningError, SyncJob, get_job

FAILURE_ALERT_AFTER = 3
_MAX_ERROR = 500

_COLUMNS = (
    "id, job_id, tenant_id, mode, trigger, transport, status, fence, position, started_at, "
    "progressed_at, ended_at, pages, records_processed, records_succeeded, records_failed, "
    "records_skipped, error"
)


class ExecutionNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("execution not found")


class StaleFenceError(InvalidStateError):
    """Someone else has taken charge of the job since this holder's fence was issued."""

    def __init__(self) -> None:
        super().__init__("the pull was taken over by a newer run")


class ExecutionClosedError(InvalidStateError):
    def __init__(self) -> None:
        super().__init__("the execution has ended")


@dataclass(frozen=True)
class Execution:
    id: str
    job_id: str
    tenant_id: str
    mode: str
    trigger: str
    transport: str
    status: str
    fence: int
    position: dict[str, Any] | None
    started_at: datetime
    progressed_at: datetime
    ended_at: datetime | None
    pages: int
    records_processed: int
    records_succeeded: int
    records_failed: int
    records_skipped: int
    error: str | None

    def to_public(self) -> dict[str, Any]:
        return {
            "execution_id": self.id,
            "job_id": self.job_id,
            "mode": self.mode,
            "trigger": self.trigger,
            "transport": self.transport,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "pages": self.pages,
            "records_processed": self.records_processed,
            "records_succeeded": self.records_succeeded,
            "records_failed": self.records_failed,
            "records_skipped": self.records_skipped,
            "error": self.error,
        }


def _from_row(row: dict[str, Any]) -> Execution:
    position = row["position"]
    return Execution(
        **{
            **row,
            "position": json.loads(position) if isinstance(position, str) else position,
        }
    )


def get_execution(tx: Transaction, execution_id: str, *, for_update: bool = False) -> Execution:
    row = tx.one(
        f"SELECT {_COLUMNS} FROM sync_executions WHERE id = :id"
        + (" FOR UPDATE" if for_update else ""),
        id=execution_id,
    )
    if row is None:
        raise ExecutionNotFoundError()
    return _from_row(row)


def list_executions(tx: Transaction, job_id: str, *, limit: int = 50) -> list[Execution]:
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM sync_executions WHERE job_id = :job_id "
        "ORDER BY started_at DESC, id DESC LIMIT :limit",
        job_id=job_id,
        limit=limit,
    )
    return [_from_row(row) for row in rows]


def connector_transport(tx: Transaction, job: SyncJob) -> tuple[str, str]:
    """The job's connector transport and its source's SQL dialect."""
    row = tx.one(
        "SELECT c.transport, s.engine FROM connectors c JOIN connector_sources s "
        "ON s.connector_id = c.id AND s.name = :source "
        "WHERE c.id = :connector_id AND c.deleted_at IS NULL",
        connector_id=job.connector_id,
        source=job.source,
    )
    if row is None:
        raise InvalidStateError("the job's connector or source no longer exists")
    return row["transport"], row["engine"]


def start(
    tx: Transaction, job_id: str, *, tenant_id: str | None, trigger: str, mode: str | None = None
) -> tuple[SyncJob, Execution]:
    """Open an execution of the job (the caller holds the job's Redis lease).

    Raises JobRunningError while another execution runs, JobPausedError for a paused job
    started by hand.
    """
    job = get_job(tx, job_id, tenant_id=tenant_id, for_update=True)
    if job.running_execution is not None:
        raise JobRunningError()
    if job.paused and trigger == "manual":
        raise JobPausedError()
    transport, _dialect = connector_transport(tx, job)
    mode = mode or job.mode
    if mode == "incremental" and job.cursor_column is None:
        raise InvalidStateError("the job has no cursor column; run it in full mode")
    position: dict[str, Any] | None = None
    if mode == "incremental" and job.cursor:
        position = {"from": keyset.overlap_start(job.cursor[0], job.overlap_s)}
    fence = job.fence + 1
    now = datetime.now(timezone.utc)
    next_run = schedules.next_run(job.schedule, now) if job.schedule else None
    execution_id = new_id("exe")
    tx.execute(
        "UPDATE sync_jobs SET fence = :fence, running_execution = :execution_id, "
        "next_run_at = coalesce(:next_run, next_run_at), updated_at = now() WHERE id = :id",
        id=job.id,
        fence=fence,
        execution_id=execution_id,
        next_run=next_run if trigger == "schedule" else None,
    )
    row = tx.one(
        f"INSERT INTO sync_executions (id, job_id, tenant_id, mode, trigger, transport, status, "
        f"fence, position) VALUES (:id, :job_id, :tenant_id, :mode, :trigger, :transport, "
        f"'running', :fence, CAST(:position AS jsonb)) RETURNING {_COLUMNS}",
        id=execution_id,
        job_id=job.id,
        tenant_id=job.tenant_id,
        mode=mode,
        trigger=trigger,
        transport=transport,
        fence=fence,
        position=json.dumps(position),
    )
    assert row is not None
    return job, _from_row(row)


def take_charge(tx: Transaction, execution_id: str) -> Execution:
    """A new driver for a running execution: the fence grows, so any earlier driver is out."""
    execution = get_execution(tx, execution_id, for_update=True)
    if execution.status != "running":
        raise ExecutionClosedError()
    fence = tx.scalar(
        "UPDATE sync_jobs SET fence = fence + 1 WHERE id = :job_id "
        "AND running_execution = :execution_id RETURNING fence",
        job_id=execution.job_id,
        execution_id=execution_id,
    )
    if fence is None:
        raise ExecutionClosedError()
    tx.execute(
        "UPDATE sync_executions SET fence = :fence, progressed_at = now() WHERE id = :id",
        id=execution_id,
        fence=fence,
    )
    return get_execution(tx, execution_id)


def page_request(
    job: SyncJob, *, mode: str, dialect: str, position: dict[str, Any] | None, limit: int
) -> QueryRequest:
    """What the connector is asked for one page: the keyset SELECT from `position`, the keyset
    columns for its cursor, the key columns (incremental: lets low-bandwidth mode skip unchanged
    rows) and the job's masking."""
    page = keyset.page_query(
        dialect=dialect,
        table=job.table,
        mode=mode,
        cursor_column=job.cursor_column,
        key_columns=list(job.key_columns),
        position=position,
        limit=limit,
    )
    return QueryRequest(
        source=job.source,
        sql=page.sql,
        params=tuple(page.params),
        max_rows=limit,
        cursor_columns=tuple(page.keyset),
        key_columns=tuple(job.key_columns) if mode == "incremental" else (),
        masking=job.masking or None,
    )


def next_page_request(tx: Transaction, execution: Execution, *, limit: int) -> QueryRequest:
    """The next page of a running execution, from its stored position."""
    job = get_job(tx, execution.job_id, tenant_id=None)
    _transport, dialect = connector_transport(tx, job)
    return page_request(
        job, mode=execution.mode, dialect=dialect, position=execution.position, limit=limit
    )


@dataclass(frozen=True)
class PageResult:
    """What a stored page changed; `finished` when it ended the execution."""

    stored: int
    rejected: int
    finished: bool
    status: str


def store_page(
    tx: Transaction,
    execution_id: str,
    *,
    fence: int,
    rows: Sequence[dict[str, Any]],
    cursor: list[Any] | None,
    skipped: int = 0,
    more: bool,
    error: str | None = None,
) -> PageResult:
    """Store one page (or chunk) of pulled rows, move the position and the job's cursor, and
    finish the execution when `more` is False or an `error` ended it. All in `tx`.

    `cursor` is the keyset value of the last row the connector read (rows it left out as
    unchanged included); without it the last stored row's values are used.
    """
    job_row = tx.one(
        "SELECT id FROM sync_jobs WHERE id = (SELECT job_id FROM sync_executions WHERE id = :e) "
        "AND fence <= :fence AND running_execution = :e FOR UPDATE",
        e=execution_id,
        fence=fence,
    )
    if job_row is None:
        raise StaleFenceError()
    execution = get_execution(tx, execution_id, for_update=True)
    if execution.status != "running":
        raise ExecutionClosedError()
    job = get_job(tx, execution.job_id, tenant_id=None, for_update=True)
    columns = keyset.keyset_columns(execution.mode, job.cursor_column, list(job.key_columns))
    stored = rejected = 0
    if rows:
        stored, rejected = _store_rows(tx, job, execution, rows)
    cursor = page_end(columns, rows, cursor)
    position = {"after": cursor} if cursor else execution.position
    high_water = job.cursor
    if job.cursor_column is not None:
        if execution.mode == "incremental":
            # Keyset order: the page's end holds its highest cursor value.
            values = [cursor[0]] if cursor else []
        else:
            values = [row[job.cursor_column] for row in rows if row.get(job.cursor_column)]
        if values:
            high_water = keyset.later(high_water, [max(values, key=keyset.value_key)])
    tx.execute(
        "UPDATE sync_executions SET position = CAST(:position AS jsonb), pages = pages + 1, "
        "records_processed = records_processed + :processed, "
        "records_succeeded = records_succeeded + :stored, "
        "records_failed = records_failed + :rejected, "
        "records_skipped = records_skipped + :skipped, progressed_at = now() WHERE id = :id",
        id=execution_id,
        position=json.dumps(position),
        processed=len(rows) + skipped,
        stored=stored,
        rejected=rejected,
        skipped=skipped,
    )
    if high_water != job.cursor:
        tx.execute(
            "UPDATE sync_jobs SET cursor = CAST(:cursor AS jsonb), updated_at = now() "
            "WHERE id = :id",
            id=job.id,
            cursor=json.dumps(high_water),
        )
    if error is not None:
        finish(tx, execution_id, status="failed", error=error)
        return PageResult(stored, rejected, True, "failed")
    if not more:
        failed = execution.records_failed + rejected
        status = "partial" if failed else "success"
        finish(tx, execution_id, status=status, error=None)
        return PageResult(stored, rejected, True, status)
    return PageResult(stored, rejected, False, "running")


def page_end(
    columns: Sequence[str], rows: Sequence[dict[str, Any]], cursor: list[Any] | None
) -> list[Any] | None:
    """Where the page ended: the later of its last row's keyset values and the connector's
    `cursor` (which also counts rows it left out as unchanged)."""
    if not rows:
        return cursor
    last = rows[-1]
    row_cursor = [last.get(column) for column in columns]
    return keyset.later(row_cursor, cursor) if cursor else row_cursor


def _store_rows(
    tx: Transaction, job: SyncJob, execution: Execution, rows: Sequence[dict[str, Any]]
) -> tuple[int, int]:
    raw = []
    for row in rows:
        keys = [row.get(column) for column in job.key_columns]
        key = str(keys[0]) if len(keys) == 1 else json.dumps(keys, ensure_ascii=False)
        moment = keyset.timestamp_of(row.get(job.cursor_column)) if job.cursor_column else None
        raw.append(
            {
                "key": key if None not in keys else "",
                "op": "upsert",
                "updated_at": (moment or execution.started_at).isoformat(),
                "data": row,
            }
        )
    valid, rejections = validate_records(raw)
    source = ensure_source(tx, job.tenant_id, job.source)
    strategy = job.conflict_strategy or source.conflict_strategy
    store_records(
        tx,
        tenant_id=job.tenant_id,
        source=source,
        entity=job.table,
        strategy=strategy,
        records=valid,
        receipt_id=execution.id,
    )
    return len(valid), len(rejections)


def finish(tx: Transaction, execution_id: str, *, status: str, error: str | None) -> None:
    """End the execution, free the job, count failures (alerting after several in a row)."""
    execution = get_execution(tx, execution_id, for_update=True)
    if execution.status != "running":
        return
    tx.execute(
        "UPDATE sync_executions SET status = :status, error = :error, ended_at = now() "
        "WHERE id = :id",
        id=execution_id,
        status=status,
        error=error[:_MAX_ERROR] if error else None,
    )
    failed = status in ("failed", "cancelled") and error is not None
    row = tx.one(
        "UPDATE sync_jobs SET running_execution = NULL, updated_at = now(), "
        "consecutive_failures = CASE WHEN :failed THEN consecutive_failures + 1 ELSE 0 END "
        "WHERE id = :job_id AND running_execution = :execution_id "
        "RETURNING consecutive_failures, tenant_id, name, connector_id",
        job_id=execution.job_id,
        execution_id=execution_id,
        failed=failed,
    )
    tx.execute(
        "UPDATE relay_jobs SET status = 'cancelled', updated_at = now() "
        "WHERE execution_id = :execution_id AND status IN ('pending', 'leased')",
        execution_id=execution_id,
    )
    if row is not None and failed and row["consecutive_failures"] >= FAILURE_ALERT_AFTER:
        outbox.enqueue(
            tx,
            ALERT_TOPIC,
            {
                "kind": "sync_job_failing",
                "severity": "warning",
                "tenant_id": row["tenant_id"],
                "labels": {
                    "alertname": "SyncJobFailing",
                    "job_id": execution.job_id,
                    "job": row["name"],
                    "connector_id": row["connector_id"],
                },
                "consecutive_failures": row["consecutive_failures"],
                "execution_id": execution_id,
                "error": (error or "")[:_MAX_ERROR],
            },
            dedupe_key=f"sync-failing:{execution_id}",
        )


def stale_relay_executions(tx: Transaction, *, older_than_s: int) -> list[str]:
    """Running relay executions with no progress for `older_than_s` (the connector is gone)."""
    rows = tx.rows(
        "SELECT id FROM sync_executions WHERE status = 'running' AND transport = 'relay' "
        "AND progressed_at < now() - make_interval(secs => :seconds) ORDER BY started_at",
        seconds=older_than_s,
    )
    return [row["id"] for row in rows]


def running_tunnel_executions(tx: Transaction, *, limit: int) -> list[str]:
    rows = tx.rows(
        "SELECT id FROM sync_executions WHERE status = 'running' AND transport = 'tunnel' "
        "ORDER BY progressed_at LIMIT :limit",
        limit=limit,
    )
    return [row["id"] for row in rows]
