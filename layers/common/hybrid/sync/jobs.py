"""Sync jobs: what to pull from which connector source, how often, and where the pull stands
(the job's cursor high-water mark, its fencing number and running execution)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from hybrid.auth.keys import new_id
from hybrid.connectors.registry import ConnectorNotFoundError, get_connector
from hybrid.db import IntegrityError, Transaction
from hybrid.errors import (
    InvalidStateError,
    ResourceExistsError,
    ResourceNotFoundError,
    ValidationFailedError,
)
from hybrid.sync import schedule as schedules
from hybrid.sync.keyset import check_identifier


class SyncJobNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("sync job not found")


class SyncJobNameTakenError(ResourceExistsError):
    def __init__(self) -> None:
        super().__init__("a sync job with this name already exists")


class JobRunningError(InvalidStateError):
    """The job already has a running execution (a job never runs twice at once)."""

    def __init__(self) -> None:
        super().__init__("the job is already running")


class JobPausedError(InvalidStateError):
    def __init__(self) -> None:
        super().__init__("the job is paused; resume it first")


_COLUMNS = (
    'id, tenant_id, name, connector_id, source, table_name AS "table", cursor_column, key_columns, '
    "mode, "
    "schedule, masking, conflict_strategy, overlap_s, page_rows, paused, cursor, fence, "
    "running_execution, next_run_at, consecutive_failures, created_at, updated_at"
)


@dataclass(frozen=True)
class SyncJob:
    id: str
    tenant_id: str
    name: str
    connector_id: str
    source: str
    table: str
    cursor_column: str | None
    key_columns: tuple[str, ...]
    mode: str
    schedule: str | None
    masking: dict[str, Any]
    conflict_strategy: str | None
    overlap_s: int
    page_rows: int
    paused: bool
    cursor: list[Any] | None
    fence: int
    running_execution: str | None
    next_run_at: datetime | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "connector_id": self.connector_id,
            "source": self.source,
            "table": self.table,
            "cursor_column": self.cursor_column,
            "key_columns": list(self.key_columns),
            "mode": self.mode,
            "schedule": self.schedule,
            "masking": self.masking,
            "conflict_strategy": self.conflict_strategy,
            "overlap_s": self.overlap_s,
            "page_rows": self.page_rows,
            "paused": self.paused,
            "cursor": self.cursor[0] if self.cursor else None,
            "running_execution": self.running_execution,
            "next_run_at": self.next_run_at,
            "consecutive_failures": self.consecutive_failures,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _from_row(row: dict[str, Any]) -> SyncJob:
    return SyncJob(
        **{
            **row,
            "key_columns": tuple(row["key_columns"]),
            "masking": _json(row["masking"]) or {},
            "cursor": _json(row["cursor"]),
        }
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class JobSpec:
    """A job's settings as created or changed through the API (already schema-valid)."""

    name: str
    connector_id: str
    source: str
    table: str
    cursor_column: str | None
    key_columns: tuple[str, ...]
    mode: str = "incremental"
    schedule: str | None = None
    masking: dict[str, Any] | None = None
    conflict_strategy: str | None = None
    overlap_s: int = 60
    page_rows: int = 5000


def _check_spec(tx: Transaction, tenant_id: str, spec: JobSpec) -> JobSpec:
    try:
        connector = get_connector(tx, spec.connector_id, tenant_id=tenant_id)
    except ConnectorNotFoundError:
        raise ValidationFailedError("connector_id: no such connector") from None
    if spec.source not in {source.name for source in connector.sources}:
        raise ValidationFailedError("source: the connector has no such source")
    check_identifier(spec.table, what="table", qualified=True)
    if spec.cursor_column is not None:
        check_identifier(spec.cursor_column, what="cursor_column")
    for column in spec.key_columns:
        check_identifier(column, what="key_columns")
    if spec.mode == "incremental" and not spec.cursor_column:
        raise ValidationFailedError("cursor_column: an incremental job needs a cursor column")
    if len(set(spec.key_columns)) != len(spec.key_columns):
        raise ValidationFailedError("key_columns: a column is listed twice")
    if spec.masking:
        from hybrid.masking import MaskingPolicy, MaskingPolicyError

        try:
            MaskingPolicy.from_config(spec.masking, pseudonym_key=b"\0" * 32)
        except MaskingPolicyError as exc:
            raise ValidationFailedError(f"masking: {exc}") from None
    schedule = schedules.validate(spec.schedule) if spec.schedule else None
    return replace(spec, schedule=schedule)


def create_job(tx: Transaction, tenant_id: str, spec: JobSpec) -> SyncJob:
    spec = _check_spec(tx, tenant_id, spec)
    now = datetime.now(timezone.utc)
    next_run = schedules.next_run(spec.schedule, now) if spec.schedule else None
    with _unique_name():
        row = tx.one(
            f"INSERT INTO sync_jobs (id, tenant_id, name, connector_id, source, table_name, "
            f"cursor_column, key_columns, mode, schedule, masking, conflict_strategy, overlap_s, "
            f"page_rows, next_run_at) VALUES (:id, :tenant_id, :name, :connector_id, :source, "
            f":table_name, :cursor_column, CAST(:key_columns AS text[]), :mode, :schedule, "
            f"CAST(:masking AS jsonb), :conflict_strategy, :overlap_s, :page_rows, :next_run_at) "
            f"RETURNING {_COLUMNS}",
            id=new_id("job"),
            tenant_id=tenant_id,
            connector_id=spec.connector_id,
            source=spec.source,
            table_name=spec.table,
            cursor_column=spec.cursor_column,
            key_columns=list(spec.key_columns),
            mode=spec.mode,
            next_run_at=next_run,
            **_settings(spec),
        )
    assert row is not None
    return _from_row(row)


@contextmanager
def _unique_name() -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        if exc.constraint == "sync_jobs_tenant_name":
            raise SyncJobNameTakenError() from None
        raise


def _settings(spec: JobSpec) -> dict[str, Any]:
    """The columns a job's owner may change, as statement parameters."""
    return {
        "name": spec.name,
        "schedule": spec.schedule,
        "masking": json.dumps(spec.masking or {}),
        "conflict_strategy": spec.conflict_strategy,
        "overlap_s": spec.overlap_s,
        "page_rows": spec.page_rows,
    }


def get_job(
    tx: Transaction, job_id: str, *, tenant_id: str | None, for_update: bool = False
) -> SyncJob:
    row = tx.one(
        f"SELECT {_COLUMNS} FROM sync_jobs WHERE id = :id AND deleted_at IS NULL "
        "AND (CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id)"
        + (" FOR UPDATE" if for_update else ""),
        id=job_id,
        tenant_id=tenant_id,
    )
    if row is None:
        raise SyncJobNotFoundError()
    return _from_row(row)


def list_jobs(tx: Transaction, tenant_id: str) -> list[SyncJob]:
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM sync_jobs WHERE tenant_id = :tenant_id AND deleted_at IS NULL "
        "ORDER BY created_at, id",
        tenant_id=tenant_id,
    )
    return [_from_row(row) for row in rows]


UPDATABLE = ("name", "schedule", "masking", "conflict_strategy", "overlap_s", "page_rows")


def update_job(tx: Transaction, job_id: str, *, tenant_id: str, changes: dict[str, Any]) -> SyncJob:
    """Change a job's settings (a running execution keeps the ones it started with, except
    the page size and masking of pages it has yet to ask for)."""
    job = get_job(tx, job_id, tenant_id=tenant_id, for_update=True)
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValidationFailedError(f"cannot change: {', '.join(sorted(unknown))}")
    if changes.get("name", job.name) is None or changes.get("overlap_s", 0) is None:
        raise ValidationFailedError("name and overlap_s cannot be cleared")
    if "page_rows" in changes and changes["page_rows"] is None:
        raise ValidationFailedError("page_rows cannot be cleared")
    spec = _check_spec(
        tx,
        tenant_id,
        JobSpec(
            name=changes.get("name", job.name),
            connector_id=job.connector_id,
            source=job.source,
            table=job.table,
            cursor_column=job.cursor_column,
            key_columns=job.key_columns,
            mode=job.mode,
            schedule=changes.get("schedule", job.schedule),
            masking=changes.get("masking", job.masking),
            conflict_strategy=changes.get("conflict_strategy", job.conflict_strategy),
            overlap_s=changes.get("overlap_s", job.overlap_s),
            page_rows=changes.get("page_rows", job.page_rows),
        ),
    )
    next_run = job.next_run_at
    if "schedule" in changes:
        now = datetime.now(timezone.utc)
        next_run = schedules.next_run(spec.schedule, now) if spec.schedule else None
    with _unique_name():
        row = tx.one(
            f"UPDATE sync_jobs SET name = :name, schedule = :schedule, "
            f"masking = CAST(:masking AS jsonb), conflict_strategy = :conflict_strategy, "
            f"overlap_s = :overlap_s, page_rows = :page_rows, next_run_at = :next_run, "
            f"updated_at = now() WHERE id = :id RETURNING {_COLUMNS}",
            id=job.id,
            next_run=next_run,
            **_settings(spec),
        )
    assert row is not None
    return _from_row(row)


def set_paused(tx: Transaction, job_id: str, *, tenant_id: str, paused: bool) -> SyncJob:
    job = get_job(tx, job_id, tenant_id=tenant_id, for_update=True)
    next_run = job.next_run_at
    if not paused and job.schedule:
        next_run = schedules.next_run(job.schedule, datetime.now(timezone.utc))
    row = tx.one(
        f"UPDATE sync_jobs SET paused = :paused, next_run_at = :next_run, updated_at = now() "
        f"WHERE id = :id RETURNING {_COLUMNS}",
        id=job.id,
        paused=paused,
        next_run=next_run,
    )
    assert row is not None
    return _from_row(row)


def delete_job(tx: Transaction, job_id: str, *, tenant_id: str) -> SyncJob:
    job = get_job(tx, job_id, tenant_id=tenant_id, for_update=True)
    if job.running_execution:
        raise JobRunningError()
    tx.execute(
        "UPDATE sync_jobs SET deleted_at = now(), updated_at = now() WHERE id = :id", id=job.id
    )
    return job


def due_job_ids(tx: Transaction, *, limit: int) -> list[str]:
    """Jobs whose schedule says they should start now and that are not running."""
    rows = tx.rows(
        "SELECT id FROM sync_jobs WHERE deleted_at IS NULL AND NOT paused "
        "AND next_run_at <= now() AND running_execution IS NULL "
        "ORDER BY next_run_at, id LIMIT :limit",
        limit=limit,
    )
    return [row["id"] for row in rows]
