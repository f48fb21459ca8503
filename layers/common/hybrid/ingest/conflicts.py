"""Stored conflicts: listing, reading and resolving them.

A conflict keeps the current version as it was when it arose (`current_version`,
`current_hash`), so a resolution that writes the record (`take_incoming`, `merge`) is refused
once the record has moved on: the person resolving decided against a state that no longer
exists. A written resolution keeps the record's `updated_at` at the later of the two versions,
so older pushes still lose against it under `timestamp_priority`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from hybrid.db import Transaction
from hybrid.errors import DomainError, InvalidStateError, ResourceNotFoundError
from hybrid.ingest.engine import lock_entity
from hybrid.ingest.hashing import TOMBSTONE_HASH

Resolution = Literal["keep_current", "take_incoming", "merge"]
RESOLVABLE = frozenset({"PENDING", "KEPT_BOTH"})


class ConflictNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("conflict not found")


class ConflictNotResolvableError(InvalidStateError):
    def __init__(self, status: str) -> None:
        super().__init__(
            f"the conflict is {status}: only PENDING or KEPT_BOTH conflicts can be resolved"
        )


class RecordChangedError(InvalidStateError):
    def __init__(self) -> None:
        super().__init__("record changed since; push again or resolve with merge")


class MergeDataInvalidError(DomainError):
    """The merged document of a `merge` resolution cannot be stored (422)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("the merged data failed validation")
        self.errors = errors


@dataclass(frozen=True)
class Conflict:
    id: str
    tenant_id: str
    entity: str
    key: str
    source: str
    strategy: str
    status: str
    reason: str
    current_data: dict[str, Any] | None
    current_updated_at: datetime | None
    current_source: str | None
    current_version: int | None
    current_hash: bytes | None
    incoming_op: str
    incoming_data: dict[str, Any] | None
    incoming_updated_at: datetime
    receipt_id: str | None
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": self.entity,
            "key": self.key,
            "source": self.source,
            "strategy": self.strategy,
            "status": self.status,
            "reason": self.reason,
            "receipt_id": self.receipt_id,
            "current_data": self.current_data,
            "current_updated_at": self.current_updated_at,
            "current_source": self.current_source,
            "current_version": self.current_version,
            "incoming_op": self.incoming_op,
            "incoming_data": self.incoming_data,
            "incoming_updated_at": self.incoming_updated_at,
            "resolution": self.resolution,
            "resolved_by": self.resolved_by,
            "resolved_at": self.resolved_at,
            "created_at": self.created_at,
        }


_COLUMNS = (
    "id, tenant_id, entity, key, source, strategy, status, reason, current_data, "
    "current_updated_at, current_source, current_version, current_hash, incoming_op, "
    "incoming_data, incoming_updated_at, receipt_id, resolution, resolved_by, resolved_at, "
    "created_at"
)


def list_conflicts(
    tx: Transaction,
    *,
    tenant_id: str,
    status: str | None,
    limit: int,
    before: str | None,
) -> list[Conflict]:
    """The tenant's conflicts, newest first; `before` is the id of the last one of the
    previous page (an unknown id gives an empty page)."""
    where = ["tenant_id = :tenant_id"]
    params: dict[str, Any] = {"tenant_id": tenant_id, "limit": limit}
    if status is not None:
        where.append("status = :status")
        params["status"] = status
    if before is not None:
        where.append(
            "(created_at, id) < (SELECT created_at, id FROM data_conflicts "
            "WHERE tenant_id = :tenant_id AND id = :before)"
        )
        params["before"] = before
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM data_conflicts WHERE {' AND '.join(where)} "
        "ORDER BY created_at DESC, id DESC LIMIT :limit",
        **params,
    )
    return [Conflict(**row) for row in rows]


def get_conflict(tx: Transaction, tenant_id: str, conflict_id: str) -> Conflict:
    return _fetch(tx, tenant_id, conflict_id, lock=False)


def resolve_conflict(
    tx: Transaction,
    *,
    tenant_id: str,
    conflict_id: str,
    resolution: Resolution,
    data: dict[str, Any] | None,
    actor: str,
) -> Conflict:
    """Close a PENDING or KEPT_BOTH conflict: keep the current version, take the incoming
    one, or store `data` (a merge). Writing resolutions bump the record's version."""
    entity = _fetch(tx, tenant_id, conflict_id, lock=False).entity
    lock_entity(tx, tenant_id, entity)
    conflict = _fetch(tx, tenant_id, conflict_id, lock=True)
    if conflict.status not in RESOLVABLE:
        raise ConflictNotResolvableError(conflict.status)
    if resolution == "take_incoming":
        _write(tx, conflict, conflict.incoming_data if conflict.incoming_op == "upsert" else None)
    elif resolution == "merge":
        if data is None:
            raise MergeDataInvalidError(
                [{"loc": ["data"], "msg": "a merge needs the merged data", "type": "missing"}]
            )
        _write(tx, conflict, data)
    row = tx.one(
        "UPDATE data_conflicts SET status = 'RESOLVED', resolution = :resolution, "
        "resolved_by = :actor, resolved_at = now() "
        f"WHERE tenant_id = :tenant_id AND id = :id RETURNING {_COLUMNS}",
        resolution=resolution,
        actor=actor,
        tenant_id=tenant_id,
        id=conflict_id,
    )
    assert row is not None
    return Conflict(**row)


def _fetch(tx: Transaction, tenant_id: str, conflict_id: str, *, lock: bool) -> Conflict:
    row = tx.one(
        f"SELECT {_COLUMNS} FROM data_conflicts WHERE tenant_id = :tenant_id AND id = :id"
        + (" FOR UPDATE" if lock else ""),
        tenant_id=tenant_id,
        id=conflict_id,
    )
    if row is None:
        raise ConflictNotFoundError()
    return Conflict(**row)


def _write(tx: Transaction, conflict: Conflict, data: dict[str, Any] | None) -> None:
    """Store `data` (None: delete) as the record's next version, if it is still the version
    the conflict was recorded against. The caller holds the entity lock."""
    stored = tx.one(
        "SELECT version, content_hash FROM records "
        "WHERE tenant_id = :tenant_id AND entity = :entity AND key = :key",
        tenant_id=conflict.tenant_id,
        entity=conflict.entity,
        key=conflict.key,
    )
    if (
        stored is None
        or stored["version"] != conflict.current_version
        or bytes(stored["content_hash"]) != conflict.current_hash
    ):
        raise RecordChangedError()
    canonical, digest = _checked(conflict, data) if data is not None else (None, TOMBSTONE_HASH)
    tx.execute(
        "UPDATE records SET data = CAST(:data AS jsonb), content_hash = :hash, "
        "updated_at = greatest(updated_at, :incoming_at), deleted = :deleted, "
        "source = :source, field_times = NULL, version = version + 1, "
        "receipt_id = :receipt_id, ingested_at = now() "
        "WHERE tenant_id = :tenant_id AND entity = :entity AND key = :key",
        data=canonical,
        hash=digest,
        incoming_at=conflict.incoming_updated_at,
        deleted=data is None,
        source=conflict.source,
        receipt_id=conflict.receipt_id,
        tenant_id=conflict.tenant_id,
        entity=conflict.entity,
        key=conflict.key,
    )


def _checked(conflict: Conflict, data: dict[str, Any]) -> tuple[str, bytes]:
    """The canonical JSON and hash of a document, under the limits of a pushed record."""
    from hybrid.ingest.models import validate_records

    valid, rejected = validate_records(
        [{"key": conflict.key, "updated_at": conflict.incoming_updated_at, "data": data}]
    )
    if rejected:
        raise MergeDataInvalidError(rejected[0].errors)
    record = valid[0][1]
    canonical = record.canonical_data
    assert canonical is not None
    return canonical.decode("utf-8"), record.content_hash
